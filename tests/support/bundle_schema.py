"""The official bundle JSON schema's rules for the keys this template writes, encoded by hand.

Source: databricks/cli bundle/schema/jsonschema.json, v1.13.0 (read at commit 7bbe2852131bc5c4a6c7bad5f147bc7772eedf9f).
That file is under the Databricks License (use only with Databricks services, redistribution with the license
attached), so it is not copied here: these are our own notes of the rules we rely on, which editors that validate
databricks.yml against the schema apply to the file as written (before any target is merged):
- every object is closed (`additionalProperties: false`), so an unknown key is an error;
- `required`: bundle.name, an app's `name` (wherever an app appears, under `targets` too), an app resource's
  `name`, permission `level`, the postgres_* ids and parents;
- integer, number and boolean fields also take a whole reference `${resources|bundle|workspace|artifacts|var...}`;
- enums: app permission levels CAN_MANAGE / CAN_USE (apps.AppPermissionLevel), the Lakebase app resource
  permission CAN_CONNECT_AND_CREATE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = "databricks/cli v1.13.0, bundle/schema/jsonschema.json"
# the whole-reference patterns the schema allows in place of a typed scalar
_SEGMENT = r"[^\W\d_]+(?:[-_]*[^\W_]+)*(?:\[[0-9]+\])*"
WHOLE_REFERENCE = re.compile(rf"\$\{{(?:resources|bundle|workspace|artifacts|var)(?:\.{_SEGMENT})+\}}")


@dataclass
class Rule:
    kind: str  # object, map, list, string, int, number, bool, any
    properties: dict[str, Rule] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: Rule | None = None
    enum: tuple[str, ...] = ()


STRING, INT, NUMBER, BOOL, ANY = Rule("string"), Rule("int"), Rule("number"), Rule("bool"), Rule("any")


def obj(required: tuple[str, ...] = (), **properties: Rule) -> Rule:
    return Rule("object", properties, required)


def mapping(items: Rule) -> Rule:
    return Rule("map", items=items)


def listing(items: Rule) -> Rule:
    return Rule("list", items=items)


def strings(names: str) -> dict[str, Rule]:
    return {name: STRING for name in names.split()}


def flags(names: str) -> dict[str, Rule]:
    return {name: BOOL for name in names.split()}


LIFECYCLE = obj(prevent_destroy=BOOL)
PERMISSION = obj(("level",), level=STRING, **strings("group_name service_principal_name user_name"))
APP_PERMISSION = obj(
    ("level",),
    level=Rule("string", enum=("CAN_MANAGE", "CAN_USE")),
    **strings("group_name service_principal_name user_name"),
)
LAKEBASE_PERMISSION = Rule("string", enum=("CAN_CONNECT_AND_CREATE",))
APP_RESOURCE = obj(
    ("name",),
    **strings("name description"),
    postgres=obj(branch=STRING, database=STRING, permission=LAKEBASE_PERMISSION),
    database=obj(
        ("database_name", "instance_name", "permission"),
        database_name=STRING,
        instance_name=STRING,
        permission=LAKEBASE_PERMISSION,
    ),
    **{k: ANY for k in "app experiment genie_space job secret serving_endpoint sql_warehouse uc_securable".split()},
)
APP = obj(
    ("name",),
    **strings("name description source_code_path budget_policy_id compute_size usage_policy_id"),
    compute_min_instances=INT,  # [Private Preview]
    compute_max_instances=INT,  # [Private Preview]
    permissions=listing(APP_PERMISSION),
    resources=listing(APP_RESOURCE),
    lifecycle=obj(prevent_destroy=BOOL, started=BOOL),
    **{k: ANY for k in "config forward_user_access_token git_repository git_source space user_api_scopes".split()},
    telemetry_export_destinations=ANY,
)
POSTGRES_PROJECT = obj(
    ("project_id",),
    **strings("project_id display_name budget_policy_id default_branch history_retention_duration"),
    pg_version=INT,
    enable_pg_native_login=BOOL,
    purge_on_delete=BOOL,
    custom_tags=ANY,
    default_endpoint_settings=obj(
        autoscaling_limit_min_cu=NUMBER,
        autoscaling_limit_max_cu=NUMBER,
        no_suspension=BOOL,
        pg_settings=ANY,
        suspend_timeout_duration=STRING,
    ),
    permissions=listing(PERMISSION),
    lifecycle=LIFECYCLE,
)
POSTGRES_BRANCH = obj(
    ("branch_id", "parent"),
    **strings("branch_id parent source_branch source_branch_lsn source_branch_time ttl expire_time"),
    **flags("is_protected no_expiry purge_on_delete replace_existing"),
    lifecycle=LIFECYCLE,
)
POSTGRES_ROLE = obj(
    ("parent", "role_id"),
    **strings("parent role_id postgres_role identity_type auth_method"),
    **{k: ANY for k in ("membership_roles", "attributes")},
    replace_existing=BOOL,
    lifecycle=LIFECYCLE,
)
POSTGRES_DATABASE = obj(
    ("database_id", "parent", "role"),
    **strings("database_id parent postgres_database role"),
    replace_existing=BOOL,
    lifecycle=LIFECYCLE,
)
RESOURCES = obj(
    apps=mapping(APP),
    postgres_projects=mapping(POSTGRES_PROJECT),
    postgres_branches=mapping(POSTGRES_BRANCH),
    postgres_roles=mapping(POSTGRES_ROLE),
    postgres_databases=mapping(POSTGRES_DATABASE),
)
WORKSPACE = obj(**strings("root_path host profile file_path artifact_path resource_path state_path"))
BUNDLE = obj(
    **strings("name databricks_cli_version cluster_id compute_id uuid engine"),
    deployment=obj(fail_on_active_runs=BOOL, lock=obj(enabled=BOOL, force=BOOL)),
    git=ANY,
)
VARIABLE = obj(default=ANY, description=STRING, lookup=ANY, type=STRING)
TARGET = obj(
    default=BOOL,
    mode=STRING,
    variables=mapping(ANY),  # variable.TargetVariable: a value, or {default, description, lookup, type}
    resources=RESOURCES,
    workspace=WORKSPACE,
    bundle=BUNDLE,
    permissions=listing(PERMISSION),
    **{k: ANY for k in "artifacts cluster_id compute_id git presets run_as sync".split()},
)
ROOT = obj(
    bundle=Rule("object", BUNDLE.properties, ("name",)),
    experimental=obj(scripts=mapping(STRING), **{k: ANY for k in "python pydabs python_wheel_wrapper".split()}),
    variables=mapping(VARIABLE),
    resources=RESOURCES,
    targets=mapping(TARGET),
    workspace=WORKSPACE,
    permissions=listing(PERMISSION),
    **{k: ANY for k in "artifacts include presets python run_as scripts sync".split()},
)


def problems(value: Any, rule: Rule = ROOT, path: str = "") -> list[str]:
    """Everything in `value` the schema's rules refuse, each with its path; empty when it passes."""
    where = path or "(root)"
    if rule.kind == "any":
        return []
    if rule.kind in ("int", "number", "bool"):
        typed = {"int": int, "number": (int, float), "bool": bool}[rule.kind]
        is_bool = isinstance(value, bool)
        if (isinstance(value, typed) and (rule.kind == "bool" or not is_bool)) or (
            isinstance(value, str) and WHOLE_REFERENCE.fullmatch(value)
        ):
            return []
        return [f"{where}: {value!r} is not a {rule.kind} nor a whole ${{...}} reference"]
    if rule.kind == "string":
        if not isinstance(value, str):
            return [f"{where}: {value!r} is not a string"]
        if rule.enum and value not in rule.enum and not WHOLE_REFERENCE.fullmatch(value):
            return [f"{where}: {value!r} is not one of {rule.enum}"]
        return []
    if rule.kind == "list":
        if not isinstance(value, list):
            return [f"{where}: not a sequence"]
        return [p for i, item in enumerate(value) for p in problems(item, rule.items or ANY, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{where}: not a mapping"]
    if rule.kind == "map":
        return [
            p for key, item in value.items() for p in problems(item, rule.items or ANY, f"{path}.{key}".lstrip("."))
        ]
    found = [f"{where}: missing required {name}" for name in rule.required if name not in value]
    for key, item in value.items():
        if key not in rule.properties:
            found.append(f"{where}: unknown key {key}")
        else:
            found.extend(problems(item, rule.properties[key], f"{path}.{key}".lstrip(".")))
    return found
