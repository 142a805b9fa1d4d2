"""Real deploys into Databricks' own fake workspace: every deployment of a render, as the identity its job uses.

For a covering subset of renders (every framework, driver, Lakebase flavour and create_database answer at least
once): `bundle deploy` of dev (a user), staging, prod and two previews (service principals), then `bundle summary`,
a `bundle plan` that plans no change, `bundle run` of each app, and `bundle destroy` of dev and both previews.
After each step the workspace is read back through the CLI; staging's and prod's objects must survive every
preview step. Each deployment deploys from a checkout of its own, as each CI job does: local bundle state is
keyed by target only (bundle/bundle.go GetLocalStateDir), so two previews from one checkout would share it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support import bundle_checks as checks
from tests.support.databricks_cli import SERVICE_PRINCIPAL, USER_NAME, Cli, FakeWorkspace, cli_binaries
from tests.support.template import combo_id, render
from tests.support.workspace_view import WorkspaceView

DEPLOYED = [
    {"framework": "streamlit", "driver": "psycopg3", "create_database": True, "lakebase": "autoscaling"},
    {"framework": "dash", "driver": "psycopg2", "create_database": False, "lakebase": "autoscaling"},
    {"framework": "fastapi", "driver": "asyncpg", "create_database": True, "lakebase": "autoscaling"},
    {"framework": "gradio", "driver": "sqlalchemy", "create_database": False, "lakebase": "provisioned"},
    {"framework": "flask", "driver": "psycopg3", "create_database": False, "lakebase": "autoscaling"},
]
APP_KEY = "lakebase_app"
ORDER = ("dev-tester", "staging", "prod", "preview-41", "preview-42")  # prod before the previews it must outlive


def versions() -> list[str]:
    return sorted(cli_binaries(), key=lambda v: tuple(map(int, v.split("."))), reverse=True)


# the newest CLI deploys most renders, the floor the others (validate runs every render with both)
CASES = [(combo, "newest" if i % 2 == 0 else "floor") for i, combo in enumerate(DEPLOYED)]


@pytest.mark.parametrize(("combo", "which"), CASES, ids=[f"{combo_id(c)}-{w}" for c, w in CASES])
def test_deploy_summary_plan_run_and_destroy(
    fake_workspace: FakeWorkspace, tmp_path: Path, combo: dict[str, Any], which: str
) -> None:
    version = versions()[0 if which == "newest" else -1]
    binary = cli_binaries()[version]
    project = render(tmp_path / "render", **combo)
    checks.edit_as_team(project)
    key = uuid.uuid4().hex
    user = Cli(fake_workspace, tmp_path / "home-user", "user", key, binary)
    ci = Cli(fake_workspace, tmp_path / "home-ci", "service_principal", key, binary)
    view = WorkspaceView(user, tmp_path)
    seed_existing_data(user, tmp_path, combo)

    runs = {v.name: v for v in checks.validations(combo) if v.name in ORDER}
    order = [name for name in ORDER if name in runs]
    checkouts = {name: checks.fresh_copy(project, tmp_path / name) for name in order}

    def cli(name: str) -> Cli:
        return user if runs[name].identity == "user" else ci

    def bundle(name: str, verb: str, *args: str):
        v = runs[name]
        return cli(name).run("bundle", verb, "-t", v.target, *v.args, *args, cwd=checkouts[name])

    deployed: dict[str, checks.Deployment] = {}
    survivors: dict[str, Any] = {}

    def survivors_unchanged(step: str) -> None:
        if survivors:
            assert view.snapshot(*survivor_keys(deployed)) == survivors, f"{step} changed staging's or prod's objects"

    for name in order:  # ---------------------------------------------------------------- deploy
        bundle(name, "deploy")
        found = bundle(name, "validate", "-o", "json")
        deployed[name] = checks.Deployment(
            name, runs[name].target, checks.user_of(runs[name]), json.loads(found.stdout)
        )
        assert_holds(view, deployed[name], compute="STOPPED")  # deploy leaves a new app's compute stopped
        survivors_unchanged(f"deploying {name}")
        if name == "prod":
            survivors = view.snapshot(*survivor_keys(deployed))
    checks.assert_isolated(deployed)

    for name in order:  # ---------------------------------------------------------------- summary, plan
        summary = json.loads(bundle(name, "summary", "-o", "json").stdout)
        ids = {entry["id"] for entries in summary["resources"].values() for entry in entries.values()}
        expected = {i.removeprefix("apps/") for i in deployed[name].identities.values()}
        assert ids == expected, f"{name}: summary {ids}, deployed {expected}"
        plan = json.loads(bundle(name, "plan", "-o", "json").stdout)["plan"]
        changes = {node: step["action"] for node, step in plan.items() if step["action"] != "skip"}
        assert not changes, f"{name}: a second plan would change {changes}"

    for name in order:  # ---------------------------------------------------------------- run
        bundle(name, "run", APP_KEY)
        app = view.app(deployed[name].spec("apps", APP_KEY)["name"])
        assert app and app["compute_status"]["state"] == "ACTIVE", (name, app)
        assert app["active_deployment"]["status"]["state"] == "SUCCEEDED", (name, app)
        assert app["active_deployment"]["source_code_path"].endswith(f"/{root_name(deployed[name])}/files/app")
        if name == "prod":
            survivors = view.snapshot(*survivor_keys(deployed))  # staging's and prod's apps run from now on
        elif name != "staging":
            survivors_unchanged(f"running {name}")

    for name in [n for n in order if n.startswith(("dev", "preview"))]:  # ------------------ destroy
        bundle(name, "destroy", "--auto-approve")
        assert view.app(deployed[name].spec("apps", APP_KEY)["name"]) is None, f"{name}: its app survived destroy"
        left = view.present({i for i in deployed[name].identities.values() if not i.startswith("apps/")})
        assert not left, f"{name}: destroy left {left}"
        survivors_unchanged(f"destroying {name}")

    assert_requests(fake_workspace, key, deployed)


def root_name(deployment: checks.Deployment) -> str:
    return deployment.config["workspace"]["root_path"].rstrip("/").rsplit("/", 1)[-1]


def survivor_keys(deployed: dict[str, checks.Deployment]) -> tuple[list[str], set[str]]:
    """Staging's and prod's apps, and every Lakebase object they created or use."""
    kept = [deployed[name] for name in ("staging", "prod") if name in deployed]
    apps = [d.spec("apps", APP_KEY)["name"] for d in kept]
    lakebase = {i for d in kept for i in d.identities.values() if not i.startswith("apps/")}
    lakebase |= {
        part for d in kept for entry in d.app_databases() for part in entry[:2] if part.startswith("projects/")
    }
    return apps, lakebase


def assert_holds(view: WorkspaceView, deployment: checks.Deployment, compute: str) -> None:
    """The workspace holds the deployment's app (its resource with permission, its grants, compute state) and
    every Lakebase object it declares, with the database's owner role."""
    spec = deployment.spec("apps", APP_KEY)
    app = view.app(spec["name"])
    assert app is not None, f"{deployment.name}: no app {spec['name']}"
    assert app["compute_status"]["state"] == compute, (deployment.name, app["compute_status"])
    held = [
        (r["postgres"]["branch"], r["postgres"]["database"], r["postgres"].get("permission"))
        if "postgres" in r
        else (r["database"]["instance_name"], r["database"]["database_name"], r["database"].get("permission"))
        for r in app["resources"]
    ]
    assert held == deployment.app_databases(), f"{deployment.name}: the app holds {held}"
    granted = {
        (p["level"], p.get("user_name") or p.get("group_name") or p.get("service_principal_name"))
        for p in spec["permissions"]
    }
    assert view.app_grants(spec["name"]) == granted, deployment.name
    declared = {i for i in deployment.identities.values() if not i.startswith("apps/")}
    assert view.present(declared) == declared, f"{deployment.name}: missing {declared - view.present(declared)}"
    for (kind, key), name in deployment.identities.items():
        if kind == "postgres_databases":
            database = view.databases(name.rsplit("/databases/", 1)[0])[name]
            role = deployment.resolve(deployment.spec(kind, key)["role"])
            assert database["status"]["role"] == role, (deployment.name, database)


def assert_requests(server: FakeWorkspace, key: str, deployed: dict[str, checks.Deployment]) -> None:
    """The request log: each app was created by its deployment's identity with its database resource and
    permission."""
    creates = {
        r["body"]["name"]: r
        for r in server.requests(workspace=key)
        if r["method"] == "POST" and r["path"] == "/api/2.0/apps" and isinstance(r.get("body"), dict)
    }
    for name, deployment in deployed.items():
        request = creates[deployment.spec("apps", APP_KEY)["name"]]
        assert request["identity"] == ("user" if deployment.user == USER_NAME else "service_principal"), name
        (resource,) = request["body"]["resources"]
        entry = resource.get("postgres") or resource.get("database")
        assert entry["permission"] == "CAN_CONNECT_AND_CREATE", (name, resource)
    assert {d.user for d in deployed.values()} <= {USER_NAME, SERVICE_PRINCIPAL}


def seed_existing_data(admin: Cli, cwd: Path, combo: dict[str, Any]) -> None:
    """create_database=no: what the team made before its first deploy (README: "Environments"), by hand."""
    if combo["create_database"]:
        return
    if combo["lakebase"] == "provisioned":
        admin.run("database", "create-database-instance", "team-instance", "--capacity", "CU_1", cwd=cwd)
        return
    where = [("team-staging", "production"), ("team-staging", "tester"), ("team-data", "production")]
    for project in {p for p, _ in where}:
        admin.run("postgres", "create-project", project, cwd=cwd)
    for project, branch in where:
        parent = f"projects/{project}/branches/{branch}"
        if branch != "production":
            source = {"spec": {"source_branch": f"projects/{project}/branches/production", "no_expiry": True}}
            admin.run("postgres", "create-branch", f"projects/{project}", branch, "--json", json.dumps(source), cwd=cwd)
        role = {"spec": {"postgres_role": "team_owner"}}
        admin.run("postgres", "create-role", parent, "--role-id", "team-owner", "--json", json.dumps(role), cwd=cwd)
        database = {"spec": {"postgres_database": "app", "role": f"{parent}/roles/team-owner"}}
        admin.run(
            "postgres", "create-database", parent, "--database-id", "app-db", "--json", json.dumps(database), cwd=cwd
        )
