"""Bundles that deploy right the first time, and deployments that cannot hurt each other.

First the resolver itself (tests/support/bundle_resolver.py, each rule from the Databricks CLI's source), then every
rendered flavour resolved as prod, dev for two developers and two pull-request previews.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import bundle_checks as checks
from tests.support import bundle_resolver as br
from tests.support import bundle_schema
from tests.support.template import combo_id, render, valid_combinations

SP = checks.CI


def bundle(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


# ---------------------------------------------------------------------------------------------- the resolver
@pytest.mark.parametrize(
    ("user", "short", "friendly"),
    [  # vectors from databricks/cli libs/iamutil/user_test.go
        (br.User("test.user.1234@example.com"), "test_user_1234", "test-user-1234"),
        (br.User("tést.üser@example.com"), "tést_üser", "test-user"),
        (br.User("first+tag@email.com"), "first_tag", "first-tag"),
        (br.User('"_quoted"@domain.com'), "quoted", "quoted"),
        (br.User("John.Doe@COMPANY.COM"), "john_doe", "john-doe"),
        (br.User("test...user___name@example.com"), "test_user_name", "test-user-name"),
        (br.User("用户.测试@example.com"), "用户_测试", "-----"),
        (br.User("user😀.test🚀@example.com"), "user_test", "user-test"),
        (
            br.User("1706906c-c0a2-4c25-9f57-3a7aa3cb8123", "My_Service_Principal"),
            "my_service_principal",
            "my-service-principal",
        ),
        (
            br.User("1706906c-c0a2-4c25-9f57-3a7aa3cb8123"),
            "1706906c_c0a2_4c25_9f57_3a7aa3cb8123",
            "1706906c-c0a2-4c25-9f57-3a7aa3cb8123",
        ),
    ],
)
def test_current_user_names_follow_the_cli(user: br.User, short: str, friendly: str) -> None:
    assert (user.short_name, user.domain_friendly_name) == (short, friendly)


def test_target_overrides_merge_maps_concatenate_sequences_and_set_variable_defaults() -> None:
    config = bundle("""
bundle: {name: b}
variables:
  who: {default: root}
  other: {default: "${var.who}-x"}
resources:
  apps:
    a:
      name: n-${var.who}
      resources: [{name: db, description: root, postgres: {branch: b1, database: d1}}]
      tags: [one]
targets:
  t:
    mode: development
    variables: {who: target}
    workspace: {root_path: "~/custom/${bundle.target}"}
    resources:
      apps:
        a:
          resources: [{name: db, postgres: {branch: b2}}]
          tags: [two]
""")
    deployment = br.resolve(config, "t", br.User("ann@example.com"))
    app = deployment.resources[("apps", "a")]
    assert app["name"] == "n-target" and deployment.config["variables"]["other"]["value"] == "target-x"
    assert app["tags"] == ["one", "two"]  # sequences concatenate (merge.go)
    assert app["resources"] == [{"name": "db", "description": "root", "postgres": {"branch": "b2", "database": "d1"}}]
    assert deployment.config["bundle"]["mode"] == "development"
    assert deployment.state_path == "/Workspace/Users/ann@example.com/custom/t/state"
    with pytest.raises(br.BundleError, match="bundle name not defined"):
        br.resolve({"targets": {"t": {}}}, "t", SP)
    default_root = br.resolve(copy.deepcopy(config) | {"targets": {"u": {}}}, "u", SP)
    assert default_root.state_path == f"/Workspace/Users/{SP.user_name}/.bundle/b/u/state"


def test_variable_precedence_and_a_missing_value() -> None:
    config = bundle("""
bundle: {name: b}
variables:
  v: {default: from-default}
  required: {description: no default}
targets: {t: {}}
""")
    with pytest.raises(br.MissingVariable, match="no value assigned to required variable required"):
        br.resolve(config, "t", SP)
    given = {"required": "x"}
    assert br.resolve(config, "t", SP, overrides_file=given).config["variables"]["v"]["value"] == "from-default"
    from_file = br.resolve(config, "t", SP, overrides_file={**given, "v": "file"})
    assert from_file.config["variables"]["v"]["value"] == "file"
    from_env = br.resolve(config, "t", SP, environ={"BUNDLE_VAR_v": "env"}, overrides_file={**given, "v": "file"})
    assert from_env.config["variables"]["v"]["value"] == "env"
    flag = br.resolve(config, "t", SP, variables={"v": "flag"}, environ={"BUNDLE_VAR_v": "env"}, overrides_file=given)
    assert flag.config["variables"]["v"]["value"] == "flag"
    with pytest.raises(br.BundleError, match="not defined"):
        br.resolve(bundle("bundle: {name: b}\nvariables: {}\ntargets: {t: {variables: {nope: 1}}}"), "t", SP)


def test_a_whole_reference_keeps_its_type_and_partial_ones_become_text() -> None:
    config = bundle("""
bundle: {name: b}
variables: {flag: {default: true}, n: {default: 7}}
resources:
  postgres_projects:
    p: {project_id: "p${var.n}", lifecycle: {prevent_destroy: "${var.flag}"}}
targets: {t: {}}
""")
    project = br.resolve(config, "t", SP).resources[("postgres_projects", "p")]
    assert project == {"project_id": "p7", "lifecycle": {"prevent_destroy": True}}


def test_resource_references_name_children_and_make_edges() -> None:
    config = bundle("""
bundle: {name: b}
resources:
  postgres_projects: {p: {project_id: proj}}
  postgres_branches: {b: {parent: "${resources.postgres_projects.p.name}", branch_id: main}}
  postgres_roles: {r: {parent: "${resources.postgres_branches.b.id}", role_id: owner}}
  postgres_databases:
    d: {parent: projects/proj/branches/main, database_id: data, role: "${resources.postgres_roles.r.name}"}
targets: {t: {}}
""")
    deployment = br.resolve(config, "t", SP)
    assert deployment.identities[("postgres_databases", "d")] == "projects/proj/branches/main/databases/data"
    assert deployment.resources[("postgres_roles", "r")]["parent"] == "projects/proj/branches/main"
    assert (("postgres_branches", "b"), ("postgres_projects", "p")) in deployment.edges
    # the database names its branch by a plain string: no edge, so the engine may create it first
    assert (("postgres_databases", "d"), ("postgres_branches", "b")) not in deployment.edges
    with pytest.raises(AssertionError, match="plain string"):
        checks.assert_children_reference_declared_parents("t", deployment)
    with pytest.raises(br.BundleError, match="does not declare"):
        br.resolve(
            bundle("bundle: {name: b}\nresources: {apps: {a: {name: '${resources.apps.b.name}'}}}\ntargets: {t: {}}"),
            "t",
            SP,
        )
    with pytest.raises(br.BundleError, match="does not know"):
        br.resolve(bundle("bundle: {name: b}\nresources: {jobs: {j: {name: x}}}\ntargets: {t: {}}"), "t", SP)


def test_the_isolation_check_sees_a_shared_object() -> None:
    """The template's old shape: dev and prod both declare one project; the check must refuse it."""
    config = bundle("""
bundle: {name: b}
variables: {app: {default: prod-app}}
resources:
  postgres_projects: {p: {project_id: shared, lifecycle: {prevent_destroy: true}}}
  apps: {a: {name: "${var.app}", resources: [{name: pg, postgres: {branch: x, database: y}}]}}
targets:
  dev: {variables: {app: dev-app}}
  prod: {}
""")
    found = {"prod": br.resolve(config, "prod", SP), "dev-alice": br.resolve(config, "dev", checks.ALICE)}
    with pytest.raises(AssertionError, match="created by both"):
        checks.assert_isolated(found)


# ---------------------------------------------------------------------------------------------- rendered bundles
FLAVOURS = [
    {"lakebase": "autoscaling", "create_database": True},
    {"lakebase": "autoscaling", "create_database": False},
    {"lakebase": "provisioned", "create_database": False},
]


@pytest.fixture(scope="module", params=FLAVOURS, ids=lambda f: f"{f['lakebase']}-{f['create_database']}")
def flavour(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    combo = {"framework": "fastapi", "driver": "psycopg3", **request.param}
    return combo, render(tmp_path_factory.mktemp("bundle"), **combo)


def test_every_deployment_is_its_own(flavour: tuple[dict, Path]) -> None:
    combo, root = flavour
    found = checks.deployments(root, combo)
    checks.assert_isolated(found)
    assert found["dev-alice"].resources[("apps", "lakebase_app")]["name"] == "lakebase-app-alice-smith"
    if combo["lakebase"] == "autoscaling":
        assert found["preview-42"].resources[("apps", "lakebase_app")]["name"] == "lakebase-app-pr-42"
        branch = found["preview-42"].identities[("postgres_branches", "lakebase")]
        parent = "lakebase-app-db-staging" if combo["create_database"] else "team-staging"  # never prod's project
        assert branch == f"projects/{parent}/branches/pr-42"
        assert found["staging"].resources[("apps", "lakebase_app")]["name"] == "lakebase-app-staging"
    else:
        assert not any(name.startswith("preview") for name in found)  # no branches in Provisioned: no previews
    for name, deployment in found.items():
        result = checks.run_postinit(root, deployment)
        assert result.returncode == 0, (name, result.stderr)


def test_a_new_team_gets_dev_with_one_command(flavour: tuple[dict, Path]) -> None:
    """create_database=yes: dev declares everything it uses, so nothing has to exist before it."""
    combo, root = flavour
    config = br.load(root / "databricks.yml")
    if combo["create_database"]:
        dev = br.resolve(config, "dev", checks.ALICE)
        declared = set(dev.identities.values())
        for entry in dev.resources[("apps", "lakebase_app")]["resources"]:
            assert entry["postgres"]["branch"] in declared and entry["postgres"]["database"] in declared
        assert all(b["parent"] in declared for (k, _), b in dev.resources.items() if k == "postgres_branches")
    else:  # the data-pointing variables have no default: unset, the CLI stops and names one
        with pytest.raises(br.MissingVariable) as missing:
            br.resolve(config, "dev", checks.ALICE)
        data_variables = set(checks.EXISTING_DATA[combo["lakebase"]]["alice"])
        assert missing.value.name in data_variables
        for name in data_variables:
            assert "default" not in config["variables"][name], name


def test_prod_stops_until_the_team_names_who_may_open_it(flavour: tuple[dict, Path]) -> None:
    """app_users has no default in prod: unset, the CLI stops with its own message (set_variables.go)."""
    combo, root = flavour
    config = br.load(root / "databricks.yml")
    existing = checks._env(None if combo["create_database"] else checks.EXISTING_DATA[combo["lakebase"]]["prod"])
    with pytest.raises(br.MissingVariable, match="no value assigned to required variable app_users"):
        br.resolve(config, "prod", SP, environ=existing)
    prod = br.resolve(config, "prod", SP, variables=checks.PROD_VARIABLES, environ=existing)
    permissions = prod.resources[("apps", "lakebase_app")]["permissions"]
    assert {"level": "CAN_USE", "group_name": "lakebase-app-users"} in permissions
    assert "app_users" in (root / "README.md").read_text()


@pytest.mark.parametrize(
    ("user_name", "ok"),
    [("abcdefghijklmnopq@example.com", True), ("abcdefghijklmnopqr@example.com", False)],  # 17 / 18 characters
)
def test_dev_names_fit_for_user_names_up_to_17_characters(flavour: tuple[dict, Path], user_name: str, ok: bool) -> None:
    combo, root = flavour
    config = br.load(root / "databricks.yml")
    existing = {} if combo["create_database"] else checks.EXISTING_DATA[combo["lakebase"]]["alice"]
    dev = br.resolve(config, "dev", br.User(user_name), overrides_file=existing)
    result = checks.run_postinit(root, dev)
    assert (result.returncode == 0) is ok, result.stderr
    if not ok:
        assert "has 31 characters" in result.stderr and "dev_name" in result.stderr, result.stderr
        fixed = br.resolve(config, "dev", br.User(user_name), variables={"dev_name": "jdoe"}, overrides_file=existing)
        assert checks.run_postinit(root, fixed).returncode == 0


def test_a_preview_without_its_pull_request_number_stops(flavour: tuple[dict, Path]) -> None:
    combo, root = flavour
    config = br.load(root / "databricks.yml")
    if combo["lakebase"] == "provisioned":  # no branches to give a preview its own data: no preview target
        assert "preview" not in config["targets"]
        return
    existing = checks._env(None if combo["create_database"] else {"lakebase_project": "team-data"})
    preview = br.resolve(config, "preview", SP, environ=existing)
    result = checks.run_postinit(root, preview)
    assert result.returncode == 1 and "pr_number" in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------- the workflow
def test_the_deploy_workflow_gives_each_job_one_identity_and_least_privilege(flavour: tuple[dict, Path]) -> None:
    """Its behaviour is run in tests/test_workflows.py; here its shape for every flavour."""
    combo, root = flavour
    workflow = yaml.safe_load((root / ".github" / "workflows" / "deploy.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert workflow["permissions"] == {} and workflow["env"]["DATABRICKS_AUTH_TYPE"] == "github-oidc"
    assert "DATABRICKS_CLIENT_ID" not in workflow["env"] and "DATABRICKS_CLIENT_SECRET" not in str(workflow)
    assert "DATABRICKS_CLIENT_SECRET" in (root / "README.md").read_text()  # the documented fallback
    for name, job in workflow["jobs"].items():
        assert job["permissions"]["id-token"] == "write" and job["permissions"]["contents"] == "read", name
        assert set(job["permissions"]) <= {"id-token", "contents", "pull-requests"}, name
        assert job["env"]["DATABRICKS_CLIENT_ID"] == "${{ vars.DATABRICKS_CLIENT_ID }}", name  # the environment's
        assert job["environment"] == ("prod" if name == "prod" else "staging" if name == "staging" else "preview")
        cli = [s["uses"] for s in job["steps"] if s.get("uses", "").startswith("databricks/setup-cli@")]
        assert cli == ["databricks/setup-cli@6bb7075f85b326f8b9ce160933dfe9bcd63c8121"], (name, cli)  # v1.13.0
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


# ---------------------------------------------------------------------------------------------- the schema's rules
SCHEMA_CASES = [*valid_combinations(), {"max_instances": "3"}]


@pytest.mark.parametrize("combo", SCHEMA_CASES, ids=[combo_id(c) for c in SCHEMA_CASES])
def test_every_rendered_bundle_file_passes_the_schema_rules(tmp_path: Path, combo: dict[str, Any]) -> None:
    """As a file, before targets merge: what an editor validating against the official schema sees."""
    root = render(tmp_path, **combo)
    found = bundle_schema.problems(yaml.safe_load((root / "databricks.yml").read_text()))
    assert not found, f"{bundle_schema.SCHEMA_VERSION}: {found}"


def test_the_schema_rules_refuse_what_the_schema_refuses() -> None:
    text = """
bundle: {name: b, databricks_cli_version: ">= 1.11.0"}
resources:
  apps: {a: {name: x, compute_max_instances: "3", permissions: [{level: CAN_VIEW, group_name: g}]}}
  postgres_databases: {d: {parent: p, database_id: i}}
targets:
  t:
    mode: development
    resources:
      apps: {a: {resources: [{name: postgres, postgres: {branch: b, database: d, permission: CAN_READ}}]}}
      postgres_branches: {b: {parent: p, branch_id: x, purge_on_delete: "${var.ok}", ttl: 604800s, colour: red}}
"""
    found = bundle_schema.problems(bundle(text))
    assert found == [
        "resources.apps.a.compute_max_instances: '3' is not a int nor a whole ${...} reference",
        "resources.apps.a.permissions[0].level: 'CAN_VIEW' is not one of ('CAN_MANAGE', 'CAN_USE')",
        "resources.postgres_databases.d: missing required role",
        "targets.t.resources.apps.a: missing required name",  # the 17 renders' error before
        "targets.t.resources.apps.a.resources[0].postgres.permission: 'CAN_READ' is not one of ('CAN_CONNECT_AND_CREATE',)",
        "targets.t.resources.postgres_branches.b: unknown key colour",
    ], found
