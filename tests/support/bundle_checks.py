"""What every rendered databricks.yml must guarantee, checked on what the real Databricks CLI resolves.

The deployments a team has at once, each resolved by `databricks bundle validate -o json` against the fake
workspace as the identity that deploys it: dev as two developers (users), staging and two pull-request previews
(the preview service principal) and prod (prod's service principal). The checks read only the CLI's output.
Before that, the rendered file is edited the way its README tells a team to (`team_group`, prod's `app_users`,
the existing data a create_database=no render points at); a developer passes their own data with --var.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import regex
import yaml
from jsonschema import validators

from tests.support.databricks_cli import SERVICE_PRINCIPAL, USER_NAME, Cli, FakeWorkspace

# The second developer: tests/databricks_cli/newest/main.go answers /Me with this user for such a workspace key.
SECOND_DEVELOPER = "bob.jones@example.com"
SECOND_DEVELOPER_KEY = "second-developer-"
APP_NAME = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")
PREVIEWS = ("41", "42")
TEAM_GROUP = "lakebase-app-team"
# The preview deployer's application id, as a team names it in staging (the fake workspace has one service principal,
# which deploys every CI target; a team has one per environment, README: "Deploying from GitHub").
PREVIEW_IDENTITY = "5b0e8c5e-7d1a-4c1e-9a57-52f0c2d9e4aa"
PROD_USERS = "lakebase-app-users"

# What a team writes where the rendered databricks.yml has a `# <key>: <...>` placeholder (README: "Environments",
# "Who can open what"), by the placeholder's place in the file.
TEAM_EDITS: dict[tuple[str, ...], dict[str, str]] = {
    ("variables", "team_group"): {"default": TEAM_GROUP},
    ("targets", "prod", "variables"): {
        "app_users": PROD_USERS,
        "lakebase_project": "team-data",
        "lakebase_branch": "production",
        "lakebase_database": "app-db",
        "lakebase_instance": "team-instance",
        "database_name": "app",
    },
    ("targets", "staging", "variables"): {
        "preview_identity": PREVIEW_IDENTITY,
        "lakebase_project": "team-staging",
        "lakebase_branch": "production",
        "lakebase_database": "app-db",
    },
    ("targets", "preview", "variables"): {"lakebase_project": "team-staging"},
}
# create_database=no: what each developer points dev at (--var, as the README says)
DEVELOPER_DATA = {
    "autoscaling": lambda me: {
        "lakebase_project": "team-staging",
        "lakebase_branch": me,
        "lakebase_database": "app-db",
    },
    "provisioned": lambda me: {"lakebase_instance": "team-instance", "database_name": f"app_{me}"},
}
PLACEHOLDER = re.compile(r"^(?P<indent> *)# (?P<key>\w+): \S.*$")
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[\w-]+):(\s|$)")


def edit_as_team(project: Path, edits: dict[tuple[str, ...], dict[str, str]] | None = None) -> None:
    """Replace the commented-out settings (`# key: <value>`) of databricks.yml that `edits` (TEAM_EDITS unless given) name with their values."""
    edits = TEAM_EDITS if edits is None else edits
    path = project / "databricks.yml"
    lines, stack = [], []  # stack: (indent, key) of the mapping keys above the current line
    for line in path.read_text().splitlines():
        found = PLACEHOLDER.match(line) or KEY_LINE.match(line)
        if found:
            indent = len(found["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = tuple(key for _, key in stack)
            if found.re is PLACEHOLDER and found["key"] in edits.get(parent, {}):
                line = f"{found['indent']}{found['key']}: {edits[parent][found['key']]}"
            elif found.re is KEY_LINE:
                stack.append((indent, found["key"]))
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Deployment:
    """One deployment's `bundle validate -o json`, and where its objects live."""

    name: str
    target: str
    user: str
    config: dict[str, Any]
    identities: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, key in self.keys():
            self._identity(kind, key)

    def keys(self) -> list[tuple[str, str]]:
        return [(kind, key) for kind, entries in self.resources_by_kind().items() for key in entries]

    def resources_by_kind(self) -> dict[str, dict[str, Any]]:
        return self.config.get("resources") or {}

    def spec(self, kind: str, key: str) -> dict[str, Any]:
        return self.resources_by_kind()[kind][key]

    def resolve(self, value: str) -> str:
        """A value with its ${resources.<kind>.<key>.name} references replaced by the objects' names."""
        return REFERENCE.sub(lambda m: self._identity(m["kind"], m["key"]), value)

    def _identity(self, kind: str, key: str) -> str:
        if (kind, key) not in self.identities:
            spec = self.spec(kind, key)
            if kind == "apps":
                self.identities[kind, key] = f"apps/{spec['name']}"
            elif kind == "postgres_projects":
                self.identities[kind, key] = f"projects/{spec['project_id']}"
            else:  # a child named under its parent (Lakebase API resource names, projects/<p>/branches/<b>/...)
                collection, id_field = POSTGRES_CHILDREN[kind]
                self.identities[kind, key] = f"{self.resolve(spec['parent'])}/{collection}/{spec[id_field]}"
        return self.identities[kind, key]

    def app_databases(self) -> list[tuple[str, ...]]:
        """Each app's database resource: (branch, database, permission) or (instance, database, permission)."""
        found = []
        for spec in self.resources_by_kind().get("apps", {}).values():
            for entry in spec.get("resources") or []:
                if "postgres" in entry:
                    pg = entry["postgres"]
                    found.append((self.resolve(pg["branch"]), self.resolve(pg["database"]), pg.get("permission")))
                elif "database" in entry:
                    db = entry["database"]
                    found.append((db["instance_name"], db["database_name"], db.get("permission")))
        return found


REFERENCE = re.compile(r"\$\{resources\.(?P<kind>\w+)\.(?P<key>\w+)\.name\}")
POSTGRES_CHILDREN = {
    "postgres_branches": ("branches", "branch_id"),
    "postgres_roles": ("roles", "role_id"),
    "postgres_databases": ("databases", "database_id"),
    "postgres_endpoints": ("endpoints", "endpoint_id"),
}


@dataclass
class Validation:
    """How to run `bundle validate` for one deployment: as whom, with which arguments."""

    name: str
    target: str
    identity: str
    workspace_prefix: str = ""
    args: tuple[str, ...] = ()


def validations(combo: dict[str, Any]) -> list[Validation]:
    """Every deployment a team has at once for this render."""
    autoscaling = combo["lakebase"] == "autoscaling"
    found = []
    for developer, prefix in (("tester", ""), ("bob", SECOND_DEVELOPER_KEY)):
        data = {} if combo["create_database"] else DEVELOPER_DATA[combo["lakebase"]](developer)
        found.append(Validation(f"dev-{developer}", "dev", "user", prefix, var_args(data)))
    if autoscaling:
        found.append(Validation("staging", "staging", "service_principal"))
        for pr in PREVIEWS:
            found.append(Validation(f"preview-{pr}", "preview", "service_principal", args=var_args({"pr_number": pr})))
    found.append(Validation("prod", "prod", "service_principal"))
    return found


def var_args(values: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"--var={key}={value}" for key, value in values.items())


def user_of(validation: Validation) -> str:
    if validation.identity == "service_principal":
        return SERVICE_PRINCIPAL
    return SECOND_DEVELOPER if validation.workspace_prefix else USER_NAME


def validate_all(
    server: FakeWorkspace, project: Path, home: Path, binaries: dict[str, Path], combo: dict[str, Any]
) -> dict[str, dict[str, Deployment]]:
    """{cli version: {deployment name: Deployment}}: `bundle validate -o json` of every deployment with every CLI,
    concurrently. Each must exit 0 and print no warning or recommendation."""
    jobs = [(version, binary, v) for version, binary in binaries.items() for v in validations(combo)]
    key = home.name

    def run(job: tuple[str, Path, Validation]) -> tuple[str, Deployment]:
        version, binary, v = job
        cli = Cli(server, home / version / v.name, v.identity, v.workspace_prefix + key, binary)
        done = cli.run("bundle", "validate", "-o", "json", "-t", v.target, *v.args, cwd=project)
        noise = [line for line in done.stderr.splitlines() if re.match(r"\s*(Warning|Recommendation):", line)]
        assert not noise, f"CLI {version}, {v.name}: {noise}\n{done.stderr}"
        return version, Deployment(v.name, v.target, user_of(v), json.loads(done.stdout))

    found: dict[str, dict[str, Deployment]] = {version: {} for version in binaries}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for version, deployment in pool.map(run, jobs):
            found[version][deployment.name] = deployment
    return found


# ---------------------------------------------------------------------------------------------- the checks
def assert_isolated(found: dict[str, Deployment]) -> None:
    """No object two deployments manage, one state each, children by reference, own data, names that fit."""
    owners: dict[str, str] = {}
    states: dict[str, str] = {}
    for name, deployment in found.items():
        state = deployment.config["workspace"]["state_path"]
        assert state not in states, f"{name} and {states[state]} share one state: {state}"
        states[state] = name
        for obj in deployment.identities.values():
            assert obj not in owners, f"{obj} is deployed by both {owners[obj]} and {name}"
            owners[obj] = name
        assert_children_reference_declared_parents(deployment)
        for spec in deployment.resources_by_kind().get("apps", {}).values():
            assert len(spec["name"]) <= 30 and APP_NAME.fullmatch(spec["name"]), f"{name}: app name {spec['name']!r}"
    databases = {name: d.app_databases() for name, d in found.items()}
    for name, entries in databases.items():
        assert len(entries) == 1, f"{name}: one database resource per app, got {entries}"
        assert entries[0][2] == "CAN_CONNECT_AND_CREATE", f"{name}: the app's database resource has no permission"
    used = [entries[0][:2] for entries in databases.values()]
    assert len(set(used)) == len(used), f"two deployments' apps share a database: {databases}"

    prod = found["prod"]
    for kind, key in prod.keys():
        if kind != "apps":  # bundle destroy -t prod refuses: prod's data is never deleted by the bundle
            assert (prod.spec(kind, key).get("lifecycle") or {}).get("prevent_destroy") is True, (kind, key)
    for name, deployment in found.items():
        if name.startswith("preview"):
            for key, spec in deployment.resources_by_kind().get("postgres_branches", {}).items():
                assert spec.get("ttl") or spec.get("expire_time"), f"{name}: branch {key} never expires"
        assert_people_can_open_it(deployment)
        if name != "prod" and not name.startswith("dev"):
            assert_apart_from_prod(deployment, prod)


def assert_people_can_open_it(deployment: Deployment) -> None:
    """Every app grants CAN_USE to its audience, and whoever deploys it holds CAN_MANAGE (the CLI adds it:
    bundle/config/mutator/resourcemutator/fix_permissions.go). In dev the audience is the developer, whose
    CAN_MANAGE includes CAN_USE (Apps docs, "Configure permissions for a Databricks app")."""
    me = deployment.user
    for spec in deployment.resources_by_kind().get("apps", {}).values():
        grants = {
            (p["level"], p.get("user_name") or p.get("group_name") or p.get("service_principal_name"))
            for p in spec.get("permissions") or []
        }
        where = f"{deployment.name}: {grants}"
        assert all(principal for _, principal in grants), f"{where}: a grant without a principal"
        for p in spec.get("permissions") or []:  # an e-mail address is no service principal's name
            assert "@" not in p.get("service_principal_name", ""), f"{where}: a user named as a service principal"
        if deployment.target == "dev":
            assert grants == {("CAN_MANAGE", me)}, f"{where}: dev is the developer's alone"
            continue
        assert ("CAN_MANAGE", me) in grants, f"{where}: the deploying identity {me} has no CAN_MANAGE"
        assert any(level == "CAN_USE" and who != me for level, who in grants), f"{where}: nobody may use it"


def assert_apart_from_prod(deployment: Deployment, prod: Deployment) -> None:
    """Staging and previews name nothing prod deploys, not the data prod's app uses, nothing in prod's project."""
    prod_names = set(prod.identities.values()) | {part for entry in prod.app_databases() for part in entry[:2]}
    prod_projects = {n.split("/branches/")[0] for n in prod_names if n.startswith("projects/")}
    assert prod_projects, "prod uses no Lakebase project: nothing to keep apart"
    for path, value in strings(deployment.resources_by_kind()):
        value = deployment.resolve(value)
        assert value not in prod_names, f"{deployment.name}: {path} = {value} is prod's"
        inside = [p for p in prod_projects if value == p or value.startswith(p + "/")]
        assert not inside, f"{deployment.name}: {path} = {value} is in prod's project {inside}"


def assert_children_reference_declared_parents(deployment: Deployment) -> None:
    """A field naming an object the deployment declares does it by ${resources...}: the deploy engine orders
    creation by those references only (databricks/cli bundle/direct/bundle_plan.go)."""
    declared = {identity: key for key, identity in deployment.identities.items()}
    for kind, key in deployment.keys():
        for path, value in strings(deployment.spec(kind, key)):
            named = declared.get(value)
            assert named is None or named == (kind, key), (
                f"{deployment.name}: {kind}.{key} {path} = {value} is a plain string, not ${{resources...}}: "
                "the engine could create it before its parent"
            )


def strings(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, (*path, i))
    elif isinstance(value, str):
        yield path, value


# ---------------------------------------------------------------------------------------------- the schema
@cache
def bundle_schema(binary: Path) -> dict[str, Any]:
    """The JSON schema the CLI was built with (`databricks bundle schema`)."""
    done = subprocess.run([str(binary), "bundle", "schema"], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(done.stdout)


def _unicode_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    # The schema's patterns use \p{L} and \p{N} (Go's RE2), which Python's re lacks and the regex module reads.
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _validator(binary: Path) -> Any:
    schema = bundle_schema(binary)
    base = validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return validators.extend(base, {"pattern": _unicode_pattern})(schema)


def schema_problems(binary: Path, bundle_file: Path) -> list[str]:
    """What the CLI's bundle schema refuses in the file as written (before targets merge), as an editor sees it."""
    found = []
    for error in _validator(binary).iter_errors(yaml.safe_load(bundle_file.read_text())):
        leaves = list(_leaves(error))
        # in a oneOf, the alternative of a ${var.x} string always refuses a mapping: name the other one's reason
        telling = [e for e in leaves if not (e.validator == "type" and e.validator_value == "string")] or leaves
        found += [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in telling]
    return found


def _leaves(error: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    if not error.context:
        yield error
    for child in error.context:
        yield from _leaves(child)


def fresh_copy(project: Path, into: Path) -> Path:
    """A checkout of its own (local bundle state is per checkout and target)."""
    return Path(shutil.copytree(project, into, ignore=shutil.ignore_patterns(".databricks")))
