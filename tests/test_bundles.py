"""Bundles that deploy right the first time, and deployments that cannot hurt each other, as the real CLI sees them.

Every render is validated by the real Databricks CLI (the newest release and the bundle's floor) for every
deployment a team has at once, against Databricks' own fake workspace (tests/support/databricks_cli.py), and its
databricks.yml is checked as a file against the CLI's own `bundle schema`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.bundles.apps import App

from tests.support import bundle_checks as checks
from tests.support.databricks_cli import SERVICE_PRINCIPAL, USER_NAME, Cli, cli_binaries
from tests.support.template import combo_id, project_docs, render, valid_combinations

# every render, and one that asks for more app instances (compute_min/max_instances)
MATRIX = [*valid_combinations(), {**valid_combinations()[0], "max_instances": "3"}]


def newest() -> Path:
    return max(cli_binaries().items(), key=lambda item: tuple(map(int, item[0].split("."))))[1]


def team_render(tmp_path: Path, **combo: Any) -> Path:
    project = render(tmp_path / "render", **combo)
    checks.edit_as_team(project)
    return project


# ---------------------------------------------------------------------------------------------- every render
@pytest.mark.parametrize("combo", MATRIX, ids=[combo_id(c) for c in MATRIX])
def test_every_render_validates_in_every_deployment(fake_workspace, tmp_path: Path, combo: dict[str, Any]) -> None:
    """`bundle validate -o json` of dev (two developers), staging, two previews and prod, with both CLIs: exit 0,
    no warning or recommendation, and the resolved deployments keep apart. The file passes the CLI's schema."""
    project = render(tmp_path / "render", **combo)
    bundle_file = project / "databricks.yml"
    assert checks.schema_problems(newest(), bundle_file) == [], "as rendered"
    checks.edit_as_team(project)
    assert checks.schema_problems(newest(), bundle_file) == [], "as the team edited it"

    for version, found in checks.validate_all(fake_workspace, project, tmp_path / "cli", cli_binaries(), combo).items():
        expected = {"dev-tester", "dev-bob", "prod"}
        if combo["lakebase"] == "autoscaling":
            expected |= {"staging", *(f"preview-{pr}" for pr in checks.PREVIEWS)}
        assert set(found) == expected, version
        checks.assert_isolated(found)
        assert_resolved_shape(found, combo, project)


def assert_resolved_shape(found: dict[str, checks.Deployment], combo: dict[str, Any], project: Path) -> None:
    apps = {name: d.spec("apps", "lakebase_app") for name, d in found.items()}
    assert apps["dev-tester"]["name"] == "lakebase-app-tester" and apps["dev-bob"]["name"] == "lakebase-app-bob-jones"
    assert apps["prod"]["name"] == "lakebase-app"
    assert {"level": "CAN_USE", "group_name": checks.PROD_USERS} in apps["prod"]["permissions"]
    for name, spec in apps.items():
        app = App.from_dict(spec)  # the bundle models of databricks-bundles: raise on unknown fields, bad enums
        assert app.compute_max_instances == (int(combo["max_instances"]) if "max_instances" in combo else None)
        assert spec["source_code_path"].endswith("/files/app") and (project / "app").is_dir()
        (resource,) = app.resources
        assert resource.description, f"{name}: the database resource lost its description"
        if combo["lakebase"] == "autoscaling":
            assert resource.postgres is not None and resource.database is None
            (branch, database, _), *_ = found[name].app_databases()
            assert database.startswith(branch + "/databases/"), (name, branch, database)
        else:
            assert resource.database is not None and resource.postgres is None
        declared = set(found[name].resources_by_kind())
        if combo["create_database"] or name.startswith("preview"):
            expected = {"apps", "postgres_branches", "postgres_roles", "postgres_databases"}
            assert declared == expected | ({"postgres_projects"} if not name.startswith("preview") else set()), name
        else:
            assert declared == {"apps"}, name
    if combo["lakebase"] == "autoscaling":
        assert apps["staging"]["name"] == "lakebase-app-staging" and apps["preview-42"]["name"] == "lakebase-app-pr-42"
        for name in ("staging", "preview-41", "preview-42"):
            assert {"level": "CAN_USE", "group_name": checks.TEAM_GROUP} in apps[name]["permissions"], name
        parent = "lakebase-app-db-staging" if combo["create_database"] else "team-staging"  # never prod's project
        preview = found["preview-42"]
        assert preview.identities["postgres_branches", "lakebase"] == f"projects/{parent}/branches/pr-42"
        if combo["create_database"]:  # the team may seed staging's project; previews may branch it
            grants = found["staging"].spec("postgres_projects", "lakebase")["permissions"]
            assert {"level": "CAN_MANAGE", "group_name": checks.TEAM_GROUP} in grants, grants
            assert {"level": "CAN_USE", "service_principal_name": checks.PREVIEW_IDENTITY} in grants, grants
            assert "permissions" not in found["prod"].spec("postgres_projects", "lakebase")
        for name in ("staging", "prod"):
            root = found[name].config["workspace"]["root_path"]
            assert root == f"/Workspace/Users/{SERVICE_PRINCIPAL}/.bundle/lakebase_app/{name}", root
    else:
        assert "preview" not in yaml.safe_load((project / "databricks.yml").read_text())["targets"]


# ---------------------------------------------------------------------------------------------- one flavour each
FLAVOURS = {
    "autoscaling-create": {"lakebase": "autoscaling", "create_database": True},
    "autoscaling-existing": {"lakebase": "autoscaling", "create_database": False},
    "provisioned-existing": {"lakebase": "provisioned", "create_database": False},
}
AUTOSCALING = [name for name, f in FLAVOURS.items() if f["lakebase"] == "autoscaling"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory):
    """flavour name -> (answers, a pristine render of it), rendered once per module."""
    done: dict[str, tuple[dict[str, Any], Path]] = {}

    def get(name: str) -> tuple[dict[str, Any], Path]:
        if name not in done:
            combo = {"framework": "fastapi", "driver": "psycopg3", **FLAVOURS[name]}
            done[name] = combo, render(tmp_path_factory.mktemp(name), **combo)
        return done[name]

    return get


def checkout(rendered, name: str, tmp_path: Path, edits: dict | None = None) -> tuple[dict[str, Any], Path]:
    """A copy of the flavour's render of this test's own, edited as the team would."""
    combo, project = rendered(name)
    copy = checks.fresh_copy(project, tmp_path / "project")
    checks.edit_as_team(copy, edits)
    return combo, copy


def validate(fake_workspace, tmp_path: Path, project: Path, *args: str, identity: str = "user", check: bool = True):
    cli = Cli(fake_workspace, tmp_path / "home", identity)
    return cli.run("bundle", "validate", "-o", "json", *args, cwd=project, check=check)


@pytest.mark.parametrize("name", FLAVOURS)
def test_a_new_team_gets_dev_with_one_command(fake_workspace, tmp_path: Path, rendered, name: str) -> None:
    """Nothing edited: create_database=yes declares everything dev uses; otherwise the CLI names what to set."""
    combo, project = rendered(name)
    done = validate(fake_workspace, tmp_path, project, "-t", "dev", check=False)
    if combo["create_database"]:
        assert done.returncode == 0, done.stderr
        dev = checks.Deployment("dev", "dev", USER_NAME, json.loads(done.stdout))
        declared = set(dev.identities.values())
        (branch, database, _), *_ = dev.app_databases()
        assert branch in declared and database in declared
        assert all(dev.resolve(b["parent"]) in declared for b in dev.resources_by_kind()["postgres_branches"].values())
    else:  # the data-pointing variables have no default
        assert done.returncode != 0 and "no value assigned to required variable" in done.stderr, done.stderr
        named = done.stderr.split("required variable ")[1].split(".")[0]
        assert named in checks.DEVELOPER_DATA[combo["lakebase"]]("me"), done.stderr


STOPS = [
    (name, target, variable)
    for name in FLAVOURS
    for target, variable in (("prod", "app_users"), ("staging", "team_group"), ("preview", "team_group"))
    if target == "prod" or name in AUTOSCALING
]


@pytest.mark.parametrize(("name", "target", "variable"), STOPS)
def test_ci_targets_stop_until_the_team_names_who_may_open_them(
    fake_workspace, tmp_path: Path, rendered, name: str, target: str, variable: str
) -> None:
    """No default the whole workspace falls into: unset, the CLI stops with its own message (set_variables.go)."""
    edits = {path: {k: v for k, v in values.items() if k != variable} for path, values in checks.TEAM_EDITS.items()}
    edits = {path: values for path, values in edits.items() if path[-1] != variable}
    _, project = checkout(rendered, name, tmp_path, edits)
    args = ("-t", target, *(("--var=pr_number=7",) if target == "preview" else ()))
    done = validate(fake_workspace, tmp_path, project, *args, identity="service_principal", check=False)
    assert done.returncode != 0 and f"no value assigned to required variable {variable}" in done.stderr, done.stderr
    assert variable in project_docs(project)


@pytest.mark.parametrize("name", FLAVOURS)
def test_a_person_deploying_a_ci_target_is_not_named_a_service_principal(
    fake_workspace, tmp_path: Path, rendered, name: str
) -> None:
    """A first deploy by hand: the person gets CAN_MANAGE as a user (the CLI adds it), no grant names their e-mail
    as a service principal."""
    combo, project = checkout(rendered, name, tmp_path)
    for target in ("prod", "staging") if combo["lakebase"] == "autoscaling" else ("prod",):
        done = validate(fake_workspace, tmp_path, project, "-t", target)
        deployment = checks.Deployment(target, target, USER_NAME, json.loads(done.stdout))
        checks.assert_people_can_open_it(deployment)
        permissions = deployment.spec("apps", "lakebase_app")["permissions"]
        assert {"level": "CAN_MANAGE", "user_name": USER_NAME} in permissions, permissions


@pytest.mark.parametrize("name", FLAVOURS)
@pytest.mark.parametrize(("dev_name", "ok"), [("abcdefghijklmnopq", True), ("abcdefghijklmnopqr", False)])  # 17, 18
def test_dev_names_fit_for_user_names_up_to_17_characters(
    fake_workspace, tmp_path: Path, rendered, name: str, dev_name: str, ok: bool
) -> None:
    """dev_name defaults to the user's domain-friendly name; the bundle's postinit check stops a name too long."""
    combo, project = rendered(name)
    data = {} if combo["create_database"] else checks.DEVELOPER_DATA[combo["lakebase"]]("me")
    args = checks.var_args({**data, "dev_name": dev_name})
    done = validate(fake_workspace, tmp_path, project, "-t", "dev", *args, check=False)
    assert (done.returncode == 0) is ok, done.stderr
    if not ok:
        assert "has 31 characters" in done.stderr and "dev_name" in done.stderr, done.stderr


@pytest.mark.parametrize("name", AUTOSCALING)
def test_a_preview_without_its_pull_request_number_stops(fake_workspace, tmp_path: Path, rendered, name: str) -> None:
    _, project = checkout(rendered, name, tmp_path)
    done = validate(fake_workspace, tmp_path, project, "-t", "preview", identity="service_principal", check=False)
    assert done.returncode != 0 and "pr_number" in done.stderr, done.stderr


def test_the_schema_check_names_what_the_schema_refuses(tmp_path: Path) -> None:
    """The check reports a missing required field, a bad enum and an unknown key, with where they are."""
    bundle_file = tmp_path / "databricks.yml"
    bundle_file.write_text("""
bundle: {name: b}
resources:
  apps: {a: {name: x, permissions: [{level: CAN_VIEW, group_name: g}]}}
targets:
  t:
    bundle: {deployment: {lock: {enabled: true}}}
    resources:
      postgres_branches: {b: {parent: p, branch_id: x, colour: red}}
""")
    found = checks.schema_problems(newest(), bundle_file)
    assert any(p.startswith("targets.t.bundle: 'name' is a required property") for p in found), found
    assert any(p.startswith("resources.apps.a.permissions.0.level") for p in found), found
    assert any(p.startswith("targets.t.resources.postgres_branches.b") and "colour" in p for p in found), found


# ---------------------------------------------------------------------------------------------- the workflow
@pytest.mark.parametrize("name", FLAVOURS)
def test_the_deploy_workflow_gives_each_job_one_identity_and_least_privilege(rendered, name: str) -> None:
    """Its behaviour is run in tests/test_workflows.py; here its shape for every flavour."""
    combo, root = rendered(name)
    workflow = yaml.safe_load((root / ".github" / "workflows" / "deploy.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert workflow["permissions"] == {} and workflow["env"]["DATABRICKS_AUTH_TYPE"] == "github-oidc"
    assert "DATABRICKS_CLIENT_ID" not in workflow["env"] and "DATABRICKS_CLIENT_SECRET" not in str(workflow)
    assert "DATABRICKS_CLIENT_SECRET" in project_docs(root)  # the documented fallback
    for name, job in workflow["jobs"].items():
        assert job["permissions"]["id-token"] == "write" and job["permissions"]["contents"] == "read", name
        assert set(job["permissions"]) <= {"id-token", "contents", "pull-requests"}, name
        assert job["env"]["DATABRICKS_CLIENT_ID"] == "${{ vars.DATABRICKS_CLIENT_ID }}", name  # the environment's
        assert job["environment"] == ("prod" if name == "prod" else "staging" if name == "staging" else "preview")
        # the CLI is built from .github/databricks-cli (go.sum, sum.golang.org), never downloaded unchecked
        uses = [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s]
        assert "databricks/setup-cli" not in uses and "actions/cache" not in uses, (name, uses)  # nothing unchecked
        assert "actions/setup-go" in uses, (name, uses)
        build = [s for s in job["steps"] if s.get("id") == "databricks-cli"]
        assert [s["run"] for s in build] == ["bash .github/databricks-cli/build.sh"], (name, build)
        assert re.fullmatch(r"go1\.\d+\.\d+", build[0]["env"]["GOTOOLCHAIN"]), build  # an exact, checked toolchain
        deploys_prod = "-t prod" in str([s.get("run") for s in job["steps"]])
        assert deploys_prod == (name == "prod"), name
    assert triggers["push"]["tags"] == ["v*"]
    assert "refs/tags/v" in workflow["jobs"]["prod"]["if"]
    if combo["lakebase"] == "provisioned":
        assert set(workflow["jobs"]) == {"prod"} and set(triggers) == {"push"}
        return
    assert set(workflow["jobs"]) == {
        "prod",
        "staging",
        "preview",
        "preview-destroy",
        "preview-orphans",
        "preview-sweep",
    }
    groups = {name: (job.get("concurrency") or {}).get("group") for name, job in workflow["jobs"].items()}
    number = "${{ github.event.pull_request.number }}"
    assert groups["preview"] == groups["preview-destroy"] == f"preview-{number}"
    assert groups["preview-sweep"] == "preview-${{ matrix.pr }}"  # the same group per pull request


@pytest.mark.parametrize("name", [n for n in AUTOSCALING if FLAVOURS[n]["create_database"]])
def test_staging_without_the_preview_identity_stops(fake_workspace, tmp_path: Path, rendered, name: str) -> None:
    """Staging grants its project to the preview identity: unset, the postinit check stops it and names the
    variable, instead of an ACL entry with an empty name."""
    edits = {
        path: {k: v for k, v in values.items() if k != "preview_identity"} for path, values in checks.TEAM_EDITS.items()
    }
    _, project = checkout(rendered, name, tmp_path, edits)
    done = validate(fake_workspace, tmp_path, project, "-t", "staging", identity="service_principal", check=False)
    assert done.returncode != 0 and "set preview_identity" in done.stderr, done.stderr
    _, project = checkout(rendered, name, tmp_path / "named")
    validate(fake_workspace, tmp_path, project, "-t", "staging", identity="service_principal")
