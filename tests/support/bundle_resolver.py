"""A small resolver for databricks.yml: what `databricks bundle deploy -t <target>` would create, as whom.

Written from the Databricks CLI's own rules (databricks/cli, read November 2026); each rule names its source file.
It resolves what the template uses (target overrides, variables, ${var.*}, ${bundle.*}, ${workspace.*},
${resources.*} references) and nothing more; anything it does not know raises instead of guessing.

R1 YAML with anchors, aliases and merge keys ............ libs/dyn/yamlloader/loader.go (PyYAML does the same)
R2 target selection: targets.<t>.{bundle,workspace,artifacts,resources,sync,permissions,presets} merge into
   the root, maps key by key, sequences concatenated, scalars from the target; `mode` becomes bundle.mode;
   targets.<t>.variables.<v>: <scalar> sets that variable's default, and <v> must be declared at the root
   ............................................. bundle/config/root.go (MergeTargetOverrides), libs/dyn/merge/merge.go
R3 an app's `resources` entries merge by `name`, the later one winning
   ............................................. bundle/config/mutator/resourcemutator/merge_apps.go
R4 a variable's value: --var, else BUNDLE_VAR_<name>, else .databricks/bundle/<target>/variable-overrides.json,
   else its default; none of these -> "no value assigned to required variable <name>"
   ............................................. bundle/config/mutator/set_variables.go
R5 ${a.b.c} references match libs/dyn/dynvar/ref.go's pattern; ${var.x} means ${variables.x.value}; bundle.*,
   workspace.* and variables.* resolve everywhere, repeatedly (at most 11 rounds); a string that is exactly one
   reference takes the referenced value (type included); ${resources.*} waits for deploy time
   ............................................. bundle/config/mutator/resolve_variable_references.go,
                                                 libs/dyn/dynvar/resolve.go
R6 ${resources.<type>.<key>.<field>} references are the only edges the deploy engine orders by
   ............................................. bundle/direct/bundle_plan.go
R7 workspace.current_user.short_name: the user name's local part (a service principal's display name),
   lower-cased, every non letter/digit run made one '_', trimmed; domain_friendly_name: that, accents removed,
   every non ASCII letter/digit made '-' ........ libs/iamutil/user.go, libs/textutil/textutil.go, transform.go
R8 workspace.root_path defaults to ~/.bundle/${bundle.name}/${bundle.target}, ~ is /Workspace/Users/<user name>;
   deployment state lives under it .............. bundle/config/mutator/default_workspace_root.go,
                                                 expand_workspace_root.go, bundle/config/workspace.go
R9 a Lakebase resource's name is <parent>/<collection>/<id> (projects/<project_id> for a project); neither it nor
   an app name gets a development-mode prefix .. bundle/schema/jsonschema.json (postgres_* *_id descriptions),
                                                 bundle/config/mutator/resourcemutator/apply_target_mode_test.go
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# R5: libs/dyn/dynvar/ref.go, BaseVarDef = \p{L}+([-_]*[\p{L}\p{N}]+)* (Python: letters = [^\W\d_])
_SEGMENT = r"[^\W\d_]+(?:[-_]*[^\W_]+)*"
REFERENCE = re.compile(rf"\$\{{({_SEGMENT}(?:\.{_SEGMENT}(?:\[[0-9]+\])*)*(?:\[[0-9]+\])*)\}}")
MAX_ROUNDS = 11
TARGET_MERGED_FIELDS = ("bundle", "workspace", "artifacts", "resources", "sync", "permissions", "presets")
# R9: the collection each Lakebase resource type lives in under its parent
LAKEBASE_COLLECTIONS = {
    "postgres_projects": ("projects", "project_id"),
    "postgres_branches": ("branches", "branch_id"),
    "postgres_endpoints": ("endpoints", "endpoint_id"),
    "postgres_roles": ("roles", "role_id"),
    "postgres_databases": ("databases", "database_id"),
}


class BundleError(ValueError):
    """The CLI would stop here too."""


class MissingVariable(BundleError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(  # set_variables.go's message
            f"no value assigned to required variable {name}. Variables are usually assigned in databricks.yml, and "
            f'they can be overridden using "--var", the BUNDLE_VAR_{name} environment variable, or '
            ".databricks/bundle/<target>/variable-overrides.json"
        )


@dataclass(frozen=True)
class User:
    user_name: str
    display_name: str = ""

    @property
    def is_service_principal(self) -> bool:  # libs/iamutil/service_principal.go: the user name is a UUID
        try:
            uuid.UUID(self.user_name)
        except ValueError:
            return False
        return True

    @property
    def short_name(self) -> str:  # R7: GetShortUserName + NormalizeString
        name = self.display_name if self.is_service_principal and self.display_name else self.user_name
        local = name.split("@", 1)[0].lower()
        mapped = "".join(c if c.isalpha() or c.isdigit() else "_" for c in local)
        return re.sub("_+", "_", mapped).strip("_")

    @property
    def domain_friendly_name(self) -> str:  # R7: GetShortUserDomainFriendlyName
        decomposed = unicodedata.normalize("NFD", self.short_name)
        unmarked = unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))
        return "".join(c if c.isascii() and c.isalnum() else "-" for c in unmarked).lower()

    def as_config(self) -> dict[str, str]:
        return {
            "userName": self.user_name,  # the embedded iam.User's JSON name (bundle/config/workspace.go, User)
            "short_name": self.short_name,
            "domain_friendly_name": self.domain_friendly_name,
        }


@dataclass
class Deployment:
    """One `bundle deploy`: the resolved configuration and what it creates."""

    target: str
    user: User
    config: dict[str, Any]
    resources: dict[tuple[str, str], dict[str, Any]]  # (type, key) -> fields, ${resources...} resolved
    raw_resources: dict[tuple[str, str], dict[str, Any]]  # the same before ${resources...} resolution
    identities: dict[tuple[str, str], str] = field(default_factory=dict)  # (type, key) -> remote name
    edges: set[tuple[tuple[str, str], tuple[str, str]]] = field(default_factory=set)  # (child, parent) (R6)

    @property
    def state_path(self) -> str:
        return self.config["workspace"]["root_path"] + "/state"

    def created(self) -> dict[str, tuple[str, str]]:
        """'<type>:<remote name>' of every object this deployment creates (and `bundle destroy` deletes)."""
        return {f"{kind}:{self.identities[(kind, key)]}": (kind, key) for kind, key in self.resources}

    def script(self, hook: str) -> str | None:
        return ((self.config.get("experimental") or {}).get("scripts") or {}).get(hook)


# ------------------------------------------------------------------------------------------------ R2, R3
def merge(base: Any, override: Any) -> Any:
    """libs/dyn/merge/merge.go: maps merge key by key, sequences concatenate, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(override, list):
        return [*base, *copy.deepcopy(override)]
    return copy.deepcopy(override)


def merge_app_resources(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """merge_apps.go: entries with the same `name` merge into the first, the later values winning."""
    merged: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for entry in entries:
        name = entry.get("name", "")
        if name in merged:
            merged[name] = merge(merged[name], entry)
        else:
            merged[name] = copy.deepcopy(entry)
            order.append(name)
    return [merged[name] for name in order]


def select_target(root: dict[str, Any], target: str) -> dict[str, Any]:
    targets = root.get("targets") or {}
    if target not in targets:
        raise BundleError(f"{target}: no such target")
    chosen = targets[target] or {}
    config = {k: copy.deepcopy(v) for k, v in root.items() if k != "targets"}
    for name in TARGET_MERGED_FIELDS:
        if name in chosen:
            config[name] = merge(config.get(name) or {}, chosen[name])
    config.setdefault("bundle", {})["target"] = target
    if "mode" in chosen:
        config["bundle"]["mode"] = chosen["mode"]
    variables = config.setdefault("variables", {})
    for name, value in (chosen.get("variables") or {}).items():
        if name not in variables:
            raise BundleError(f"variable {name} is not defined but is assigned a value")
        default = value.get("default") if isinstance(value, dict) else value
        variables[name] = {**(variables[name] or {}), "default": default}
    for app in ((config.get("resources") or {}).get("apps") or {}).values():
        if "resources" in app:
            app["resources"] = merge_app_resources(app["resources"])
    return config


# ------------------------------------------------------------------------------------------------ R4, R5
def _lookup(config: dict[str, Any], path: str) -> Any:
    parts = path.split(".")
    if parts[0] == "var":
        parts = ["variables", parts[1], "value", *parts[2:]]
    node: Any = config
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            raise BundleError(f"reference does not exist: ${{{path}}}")
        node = node[part]
    return node


def interpolate(value: Any, resolve: Any) -> tuple[Any, bool]:
    """Replace the references `resolve(path)` knows (it returns None to leave one alone). R5."""
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            out[k], c = interpolate(v, resolve)
            changed |= c
        return out, changed
    if isinstance(value, list):
        items = [interpolate(v, resolve) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    if not isinstance(value, str):
        return value, False
    whole = REFERENCE.fullmatch(value)
    if whole:
        found = resolve(whole.group(1))
        return (value, False) if found is None else (found, True)
    changed = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal changed
        found = resolve(match.group(1))
        if found is None:
            return match.group(0)
        if isinstance(found, (dict, list)):
            raise BundleError(f"cannot interpolate a map or sequence into a string: ${{{match.group(1)}}}")
        changed = True
        return str(found).lower() if isinstance(found, bool) else str(found)

    return REFERENCE.sub(substitute, value), changed


def resolve(
    root: dict[str, Any],
    target: str,
    user: User,
    variables: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
    overrides_file: dict[str, Any] | None = None,
) -> Deployment:
    """`bundle deploy -t target` by `user` with `--var` values, BUNDLE_VAR_* environment, variable-overrides.json."""
    config = select_target(root, target)
    config["workspace"] = {**(config.get("workspace") or {}), "current_user": user.as_config()}
    environ = environ or {}
    for name, spec in config["variables"].items():  # R4
        spec = spec or {}
        config["variables"][name] = spec
        if variables and name in variables:
            spec["value"] = variables[name]
        elif f"BUNDLE_VAR_{name}" in environ:
            spec["value"] = environ[f"BUNDLE_VAR_{name}"]
        elif overrides_file and name in overrides_file:
            spec["value"] = overrides_file[name]
        elif "default" in spec and spec["default"] is not None:
            spec["value"] = spec["default"]
        else:
            raise MissingVariable(name)
    root_path = config["workspace"].get("root_path")
    if not root_path:  # R8
        if not config["bundle"].get("name"):
            raise BundleError("unable to define default workspace root: bundle name not defined")
        root_path = "~/.bundle/${bundle.name}/${bundle.target}"
    config["workspace"]["root_path"] = root_path

    def known(path: str) -> Any:
        if path.split(".")[0] not in ("bundle", "workspace", "var", "variables"):
            return None  # ${resources...}: deploy time (R6)
        found = _lookup(config, path)
        return None if isinstance(found, str) and REFERENCE.search(found) else found

    for _ in range(MAX_ROUNDS):
        config, changed = interpolate(config, known)
        if not changed:
            break
    else:
        raise BundleError("variable references are too deep (more than 11 rounds)")
    leftover = [m for m in REFERENCE.findall(json.dumps({k: v for k, v in config.items() if k != "resources"}))]
    if leftover:
        raise BundleError(f"unresolved references outside resources: {leftover}")
    if config["workspace"]["root_path"].startswith("~/"):
        config["workspace"]["root_path"] = f"/Workspace/Users/{user.user_name}" + config["workspace"]["root_path"][1:]

    for entries in (config.get("resources") or {}).values():  # bundle/config/mutator/resourcemutator/fix_permissions.go
        for spec in (entries or {}).values():
            grants = spec.get("permissions") if isinstance(spec, dict) else None
            if isinstance(grants, list) and not any(
                g.get("level") == "CAN_MANAGE"
                and user.user_name in (g.get("user_name"), g.get("service_principal_name"))
                for g in grants
            ):
                who = "service_principal_name" if user.is_service_principal else "user_name"
                grants.append({"level": "CAN_MANAGE", who: user.user_name})
    raw = {
        (kind, key): copy.deepcopy(spec)
        for kind, entries in (config.get("resources") or {}).items()
        for key, spec in (entries or {}).items()
    }
    deployment = Deployment(target, user, config, copy.deepcopy(raw), raw)
    _resolve_resource_references(deployment)
    return deployment


# ------------------------------------------------------------------------------------------------ R6, R9
def _identity(kind: str, spec: dict[str, Any]) -> str | None:
    if kind == "apps":
        return spec.get("name")
    if kind not in LAKEBASE_COLLECTIONS:
        raise BundleError(f"this resolver does not know resources of type {kind}")
    collection, id_field = LAKEBASE_COLLECTIONS[kind]
    own_id = spec.get(id_field)
    if kind == "postgres_projects":
        return f"projects/{own_id}"
    parent = spec.get("parent")
    if not isinstance(parent, str) or REFERENCE.search(parent) or not own_id:
        return None
    return f"{parent}/{collection}/{own_id}"


def _resolve_resource_references(deployment: Deployment) -> None:
    for _ in range(len(deployment.resources) + 1):
        for ref_key, spec in deployment.resources.items():
            identity = _identity(ref_key[0], spec)
            if identity is not None and not REFERENCE.search(identity):
                deployment.identities[ref_key] = identity

        def by_reference(path: str, child: tuple[str, str]) -> Any:
            parts = path.split(".")
            if parts[0] != "resources":
                return None
            if len(parts) != 4:
                raise BundleError(f"unsupported reference ${{{path}}}")
            parent = (parts[1], parts[2])
            if parent not in deployment.resources:
                raise BundleError(f"${{{path}}} names a resource this deployment does not declare")
            deployment.edges.add((child, parent))
            if parts[3] in ("name", "id") and parent in deployment.identities:
                return deployment.identities[parent]
            return None

        for ref_key in list(deployment.resources):
            deployment.resources[ref_key], _ = interpolate(
                deployment.resources[ref_key], lambda path, k=ref_key: by_reference(path, k)
            )
        if len(deployment.identities) == len(deployment.resources):
            break
    unresolved = sorted(set(deployment.resources) - set(deployment.identities))
    if unresolved:
        raise BundleError(f"cannot name {unresolved}: their parents never resolve (a reference cycle?)")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def app_database(deployment: Deployment) -> list[str]:
    """The data each app of the deployment reads and writes: a database path or instance/database."""
    found = []
    for (kind, _), spec in deployment.resources.items():
        if kind != "apps":
            continue
        for entry in spec.get("resources") or []:
            if "postgres" in entry:
                found.append(entry["postgres"]["database"])
            elif "database" in entry:
                found.append(f"{entry['database']['instance_name']}/{entry['database']['database_name']}")
    return found
