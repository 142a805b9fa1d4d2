"""What every rendered databricks.yml must guarantee, checked on the deployments tests/support/bundle_resolver.py resolves.

The deployments a team has at once: prod (from CI, as its own service principal), staging and pull-request previews
(from CI, as the preview service principal), and dev as two developers. Names chosen so the checks could fail: two
developers, two previews.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import bundle_resolver as br
from tests.support.waiting import HANG_GUARD

CI = br.User("1706906c-c0a2-4c25-9f57-3a7aa3cb8123", "github-deployer")  # prod's service principal
PREVIEW_CI = br.User("5b0e8c5e-7d1a-4c1e-9a57-52f0c2d9e4aa", "github-previews")  # staging's and previews'
ALICE = br.User("alice.smith@example.com")
BOB = br.User("bob@example.com")
APP_NAME = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")
# What a team writes in targets.prod.variables (README: "Who can open what"); prod has no default for it.
PROD_VARIABLES = {"app_users": "lakebase-app-users"}

# create_database=no: what each person points their target at (variable-overrides.json, or BUNDLE_VAR_* in CI)
EXISTING_DATA = {
    "autoscaling": {
        "prod": {"lakebase_project": "team-data", "lakebase_branch": "production", "lakebase_database": "app-db"},
        "staging": {"lakebase_project": "team-staging", "lakebase_branch": "production", "lakebase_database": "app-db"},
        "alice": {"lakebase_project": "team-staging", "lakebase_branch": "alice", "lakebase_database": "app-db"},
        "bob": {"lakebase_project": "team-staging", "lakebase_branch": "bob", "lakebase_database": "app-db"},
        "preview": {"lakebase_project": "team-staging"},
    },
    "provisioned": {
        "prod": {"lakebase_instance": "team-instance", "database_name": "app"},
        "alice": {"lakebase_instance": "team-instance", "database_name": "app_alice"},
        "bob": {"lakebase_instance": "team-instance", "database_name": "app_bob"},
    },
}


def deployments(root: Path, combo: dict[str, Any]) -> dict[str, br.Deployment]:
    config = br.load(root / "databricks.yml")
    existing = {} if combo["create_database"] else EXISTING_DATA[combo["lakebase"]]
    found = {
        "prod": br.resolve(config, "prod", CI, variables=PROD_VARIABLES, environ=_env(existing.get("prod"))),
        "dev-alice": br.resolve(config, "dev", ALICE, overrides_file=existing.get("alice")),
        "dev-bob": br.resolve(config, "dev", BOB, overrides_file=existing.get("bob")),
    }
    if "staging" in config["targets"]:
        found["staging"] = br.resolve(config, "staging", PREVIEW_CI, environ=_env(existing.get("staging")))
    if "preview" in config["targets"]:
        for pr in ("41", "42"):
            found[f"preview-{pr}"] = br.resolve(
                config, "preview", PREVIEW_CI, variables={"pr_number": pr}, environ=_env(existing.get("preview"))
            )
    return found


def _env(values: dict[str, str] | None) -> dict[str, str]:
    return {f"BUNDLE_VAR_{k}": v for k, v in (values or {}).items()}


def assert_isolated(found: dict[str, br.Deployment]) -> None:
    """No object two deployments create, children reference declared parents, own data, names that fit."""
    owners: dict[str, str] = {}
    states: dict[str, str] = {}
    for name, deployment in found.items():
        assert deployment.state_path not in states, f"{name} and {states[deployment.state_path]} share one state"
        states[deployment.state_path] = name
        for obj in deployment.created():
            assert obj not in owners, f"{obj} is created by both {owners[obj]} and {name}"
            owners[obj] = name
        assert_children_reference_declared_parents(name, deployment)
        for app in (s["name"] for (k, _), s in deployment.resources.items() if k == "apps"):
            assert len(app) <= 30 and APP_NAME.fullmatch(app), f"{name}: app name {app!r}"
    databases = {name: tuple(br.app_database(d)) for name, d in found.items()}
    assert all(databases.values()), databases
    assert len(set(databases.values())) == len(databases), f"two deployments' apps share a database: {databases}"

    prod = found["prod"]
    prod_objects = {prod.identities[key] for key in prod.resources if key[0] != "apps"}
    for key in prod.resources:
        if key[0] != "apps":  # bundle destroy -t prod refuses: prod's data is never deleted by the bundle
            assert (prod.resources[key].get("lifecycle") or {}).get("prevent_destroy") is True, key
    for name, deployment in found.items():
        if name == "prod":
            continue
        for key in deployment.resources:  # destroying dev or a preview deletes nothing prod's data lives in
            gone = deployment.identities[key]
            assert not any(obj == gone or obj.startswith(gone + "/") for obj in prod_objects), (name, gone)
        if name.startswith("preview"):
            branches = [s for (k, _), s in deployment.resources.items() if k == "postgres_branches"]
            assert all(b.get("ttl") or b.get("expire_time") for b in branches), f"{name}: a branch without expiry"
    for name, deployment in found.items():
        assert_people_can_open_it(name, deployment)
        if name == "staging" or name.startswith("preview"):
            assert_apart_from_prod(name, deployment, prod)


def assert_people_can_open_it(name: str, deployment: br.Deployment) -> None:
    """Every app grants CAN_USE to its audience; a CI deployment keeps CAN_MANAGE for the identity that deploys it
    (permissions are set whole, bundle/direct/dresources/permissions.go). In dev the audience is the developer, who
    holds CAN_MANAGE, which includes CAN_USE (Apps docs, "Configure permissions for a Databricks app")."""
    me = deployment.user.user_name
    for (kind, _), spec in deployment.resources.items():
        if kind != "apps":
            continue
        grants = {
            (p["level"], p.get("user_name") or p.get("group_name") or p.get("service_principal_name"))
            for p in spec.get("permissions") or []
        }
        assert all(principal for _, principal in grants), f"{name}: a grant without a principal: {grants}"
        if deployment.target == "dev":
            assert grants == {("CAN_MANAGE", me)}, f"{name}: dev is the developer's: {grants}"
            continue
        assert ("CAN_MANAGE", me) in grants, f"{name}: the deploying identity {me} loses CAN_MANAGE: {grants}"
        assert any(level == "CAN_USE" and principal != me for level, principal in grants), f"{name}: nobody may use it"


def assert_apart_from_prod(name: str, deployment: br.Deployment, prod: br.Deployment) -> None:
    """No preview (nor staging, which previews branch from) names an object prod deploys, the data prod's app uses or
    anything in prod's Lakebase project."""
    prod_names = {prod.identities[key] for key in prod.resources} | set(br.app_database(prod))
    prod_projects = {n.split("/branches/")[0] for n in prod_names if n.startswith("projects/")}
    assert prod_projects, "prod uses no Lakebase project: nothing to keep apart"
    for path, value in _strings(deployment.resources):
        assert value not in prod_names, f"{name}: {path} = {value} is prod's"
        inside = [p for p in prod_projects if value == p or value.startswith(p + "/")]
        assert not inside, f"{name}: {path} = {value} is in prod's project {inside}"


def assert_children_reference_declared_parents(name: str, deployment: br.Deployment) -> None:
    """A field naming an object this deployment declares must do it by ${resources...} (the deploy order, R6)."""
    by_identity = {identity: key for key, identity in deployment.identities.items()}
    for child, raw in deployment.raw_resources.items():
        for path, _ in _strings(raw):
            resolved = _get(deployment.resources[child], path)
            if resolved in by_identity and by_identity[resolved] != child:
                assert (child, by_identity[resolved]) in deployment.edges, (
                    f"{name}: {child} {path} = {resolved} is a plain string, not ${{resources...}}: "
                    "the engine could create it before its parent"
                )


def _strings(value: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _strings(v, (*path, k))]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _strings(v, (*path, i))]
    return [(path, value)] if isinstance(value, str) else []


def _get(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


def run_postinit(root: Path, deployment: br.Deployment) -> subprocess.CompletedProcess[str]:
    """The bundle's own postinit check, with the resolved arguments, as the CLI runs it from the bundle root."""
    command = deployment.script("postinit")
    assert command and command.startswith("python3 "), command
    return subprocess.run(
        [sys.executable, *command.split()[1:]], cwd=root, capture_output=True, text=True, timeout=HANG_GUARD
    )
