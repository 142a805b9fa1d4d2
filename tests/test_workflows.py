"""The rendered deploy workflow, run: its `run:` steps under `bash -e` (tests/support/workflow_runner.py) with the
real Databricks CLI first on PATH, deploying into Databricks' own fake workspace (libs/testserver), for the events a
team produces: pushes to main, pull requests opened and closed, a release tag, the nightly sweep.

Stand-ins remain only for GitHub and for what the testserver lacks (tests/support/standins/): `gh` (open pull
requests), GitHub's OIDC token service and its environments' deployment rules, and in front of the testserver
workload identity federation, one identity per service principal, enforced permissions and a branch's expiry
(workspace_front.py says what each stands for). Every request is recorded with the identity it ran as."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import indent
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from tests.support.appenv import app_python
from tests.support.databricks_cli import FakeWorkspace, tools
from tests.support.standins.lakebase_postgres import LakebasePostgres
from tests.support.standins.workspace_front import GitHubOidc, Recorded, WorkspaceFront
from tests.support.template import ROOT, project_docs, render
from tests.support.waiting import HANG_GUARD
from tests.support.workflow_runner import Repository, Run, Runner, evaluate, run_workflow

STANDINS = Path(__file__).parent / "support" / "standins"
REPO = "acme/board"
# application ids of the three deploying service principals (a UUID, as the CLI expects of one: libs/iamutil)
PROD_ID = "11111111-1111-4111-8111-111111111111"
STAGING_ID = "22222222-2222-4222-8222-222222222222"
PREVIEW_ID = "33333333-3333-4333-8333-333333333333"
DEPLOYERS = {"prod": PROD_ID, "staging": STAGING_ID, "preview": PREVIEW_ID}
PROD_GROUP = "board-users"  # what the team writes in targets.prod.variables
TEAM_GROUP = "board-team"  # and as variables.team_group's default
STAGING_PROJECT = "lakebase-app-db-staging"
PROD_DATABASE = "lakebase_app_prod"


def policy_audience(readme: str) -> str:
    """The audience the README tells the account admin to put in every federation policy, for org `acme`."""
    found = re.search(r'"audiences": \["([^"]+)"\]', readme)
    assert found, "the README shows the federation policy's audiences"
    return found[1].replace("<org>", REPO.split("/")[0])


class Team:
    """A rendered project on GitHub and its workspace: the real CLI deploys into Databricks' fake workspace through
    the front (tests/support/standins/workspace_front.py), as the service principal each job's environment names."""

    def __init__(self, tmp: Path, server: FakeWorkspace, pg_server: Any, **answers: Any) -> None:
        self.root = render(tmp / "render", **answers)
        bundle = self.root / "databricks.yml"
        bundle.write_text(
            bundle.read_text()
            # prod's database gets a name of its own: on Lakebase it is in its own project, here every endpoint is
            # the harness's one server (lakebase_postgres.py)
            .replace(
                "# app_users: <group>",
                f"app_users: {PROD_GROUP}"
                + (f"\n      database_name: {PROD_DATABASE}" if answers.get("lakebase") != "provisioned" else ""),
            )
            .replace("# preview_identity: <application id>", f"preview_identity: {PREVIEW_ID}")
            .replace("# default: <your team's workspace group>", f"default: {TEAM_GROUP}")
        )
        self.server = server
        self.pg = pg_server
        self.lakebase = LakebasePostgres(pg_server)
        self.front = WorkspaceFront(server.url, uuid.uuid4().hex, self.lakebase)
        self.oidc = GitHubOidc()
        readme = project_docs(self.root)
        for environment, client_id in DEPLOYERS.items():  # docs/deploying-from-github.md, step 2
            self.front.trust(client_id, f"repo:{REPO}:environment:{environment}", policy_audience(readme))
        self.scratch = tmp / "runs"
        self.github = tmp / "github"
        self.bin = tmp / "bin"
        for path in (self.scratch, self.github, self.bin):
            path.mkdir()
        (self.bin / "databricks").symlink_to(tools()["DATABRICKS_CLI_NEWEST"])  # the real CLI, first on PATH
        gh = self.bin / "gh"
        gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDINS / "gh.py"}" "$@"\n')
        gh.chmod(0o755)
        python = self.bin / "python3"  # with the app's requirements (setup-python and pip, done by appenv.py once)
        python.write_text(
            f'#!/bin/sh\n[ "$1 $2 $3" = "-m pip install" ] && echo "requirements preinstalled" && exit 0\n'
            f'exec "{app_python()}" "$@"\n'
        )
        python.chmod(0o755)
        self.open_prs: list[int] = []
        self.repository = Repository(
            self.root,
            REPO,
            variables={"DATABRICKS_HOST": self.front.url},
            environments={name: {"DATABRICKS_CLIENT_ID": client_id} for name, client_id in DEPLOYERS.items()},
            deployment_refs={"prod": ["refs/tags/v*"], "staging": ["refs/heads/main"]},  # docs: step 3
        )
        self.runs: list[tuple[str, Run]] = []

    def close(self) -> None:
        self.front.stop()
        self.oidc.stop()
        self.lakebase.close()

    def event(self, name: str, ref: str, payload: dict[str, Any] | None = None, workflow: Path | None = None) -> Run:
        (self.github / "open_prs.json").write_text(json.dumps(self.open_prs))
        scratch = self.scratch / str(len(self.runs))
        scratch.mkdir()
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "STANDIN_WORKSPACE": str(self.github),
            "DO_NOT_TRACK": "1",
            **self.database_env(),
        }
        path = workflow or self.root / ".github" / "workflows" / "deploy.yml"
        errors_before = len(self.server.errors())
        run = run_workflow(path, name, ref, payload or {}, Runner(self.repository, self.bin, scratch, env, self.oidc))
        unanswered = self.server.errors()[errors_before:]
        assert not unanswered, "the fake workspace had no handler for:\n" + "\n".join(unanswered)
        self.runs.append((name, run))
        return run

    def database_env(self) -> dict[str, str]:
        """Where a step's PostgreSQL client finds the harness's server behind every endpoint host (127.0.0.1): its
        port, and its certificate to verify (on Databricks: 5432 and the system's CAs)."""
        env = self.pg.env_for_app("unused")
        return {key: env[key] for key in ("PGPORT", "PGSSLMODE", "PGSSLROOTCERT") if key in env}

    def sql(self, dbname: str, query: str) -> list[tuple[Any, ...]]:
        return self.pg.query(query, dbname=dbname)

    def pull_request(self, number: int, action: str, workflow: Path | None = None) -> Run:
        if action in ("opened", "reopened"):
            self.open_prs.append(number)
        elif action == "closed":
            self.open_prs.remove(number)
        head = {"ref": f"feature-{number}", "repo": {"full_name": REPO}}
        payload = {"action": action, "number": number, "pull_request": {"number": number, "head": head}}
        return self.event("pull_request", f"refs/pull/{number}/merge", payload, workflow)

    def apps(self) -> set[str]:
        """Apps that exist and are not being deleted (the testserver keeps a deleted app in DELETING, as the cloud
        does for a while: apps.go AppsDelete)."""
        listed = self.front.list_apps()["apps"]
        return {a["name"] for a in listed if (a.get("compute_status") or {}).get("state") != "DELETING"}

    def branches(self, project: str = STAGING_PROJECT) -> set[str]:
        listed = self.front.admin("GET", f"/api/2.0/postgres/projects/{project}/branches")
        return {b["name"].rsplit("/", 1)[-1] for b in listed.get("branches") or []}

    def changes(self, principal: str | None = None) -> list[Recorded]:
        """Requests that changed something (and were allowed), by one identity if named."""
        return [
            r
            for r in self.front.requests()
            if r.method not in ("GET", "HEAD")
            and r.status < 300
            and r.path not in ("/oidc/v1/token", "/telemetry-ext")
            and (principal is None or r.principal == principal)
        ]


def deployment_of(r: Recorded) -> str:
    """Which deployment a request changed: prod, staging, preview, or '?' (the names databricks.yml gives)."""
    where = unquote(r.path) + "?" + r.query + " " + json.dumps(r.body)
    if re.search(
        r"/\.bundle/lakebase_app/(preview-\d+)\b|lakebase-app-pr-\d+\b|lakebase-app-db-staging/branches(/|\?branch_id=)pr-\d+",
        where,
    ):
        return "preview"
    if re.search(r"/\.bundle/lakebase_app/staging/|lakebase-app-staging\b|lakebase-app-db-staging\b", where):
        return "staging"
    if re.search(r"/\.bundle/lakebase_app/prod/|apps/lakebase-app\b|lakebase-app-db\b|\"lakebase-app\"", where):
        return "prod"
    return "?"


def phases(team: Team, principal: str, app: str, root: str, branch: str) -> list[str]:
    """What one identity did to one deployment, in order: 'deploy' (bundle deploy writing its state under `root`),
    'migrate' (a Lakebase credential on `branch` for `python -m database.migrate`), 'run' (bundle run deploying
    `app`'s code)."""
    seen: list[str] = []
    for r in team.front.requests():
        if r.principal != principal:
            continue
        body = json.dumps(r.body)
        if unquote(r.path).endswith(f"/{root}/state/resources.json") and r.method == "POST":
            phase = "deploy"
        elif r.path in ("/api/2.0/postgres/credentials", "/api/2.0/database/credentials") and branch in body:
            phase = "migrate"
        elif r.path == f"/api/2.0/apps/{app}/deployments" and r.method == "POST":
            phase = "run"
        else:
            continue
        if not seen or seen[-1] != phase:
            seen.append(phase)
    return seen


def owners(team: Team, dbname: str) -> set[str]:
    """Who owns the app's tables in a database."""
    return {row[0] for row in team.sql(dbname, "SELECT tableowner FROM pg_tables WHERE schemaname = 'app_data'")}


def _ok(run: Run, *jobs: str) -> None:
    ran = {j.job for j in run.jobs if j.result != "skipped"}
    assert ran == set(jobs), f"ran {ran}, expected {set(jobs)}"
    for job in run.jobs:
        assert job.result in ("success", "skipped"), f"{job.job} {job.matrix} failed:\n{job.log}"


def _hostile(team: Team, old: str, new: str) -> Path:
    """deploy.yml as a pull request's branch may rewrite it: a pull_request job runs the branch's workflow file."""
    text = (team.root / ".github" / "workflows" / "deploy.yml").read_text()
    assert old in text, old
    path = team.root / f"hostile-{len(team.runs)}.yml"
    path.write_text(text.replace(old, new))
    return path


def _preview_job(hostile: str = "") -> str:
    """A pull_request job with an id token, in environment preview, running `hostile`."""
    return (
        "\n  hostile:\n    if: github.event_name == 'pull_request'\n    runs-on: ubuntu-latest\n"
        "    environment: preview\n    permissions: {contents: read, id-token: write}\n"
        "    env:\n      DATABRICKS_CLIENT_ID: ${{ vars.DATABRICKS_CLIENT_ID }}\n"
        f"    steps:\n      - uses: actions/checkout@v0\n      - run: |\n{indent(hostile, ' ' * 10)}\n"
    )


@pytest.fixture
def team(tmp_path: Path, fake_workspace: FakeWorkspace, pg_server: Any) -> Any:
    """A team whose main has been pushed once: staging, the project previews branch from, exists."""
    made = Team(tmp_path, fake_workspace, pg_server, framework="fastapi", driver="psycopg3")
    try:
        _ok(made.event("push", "refs/heads/main"), "staging")
        yield made
    finally:
        made.close()


# ---------------------------------------------------------------------------------------------- the expressions
def test_the_expression_evaluator_reads_github_conditions() -> None:
    context = {"github": {"event_name": "push", "ref": "refs/tags/v1.2", "event": {"action": "closed"}}}
    assert evaluate("github.event_name == 'PUSH' && startsWith(github.ref, 'refs/tags/v')", context) is True
    assert evaluate("${{ github.event.action != 'closed' }}", context) is False
    assert evaluate("(github.event_name == 'schedule' || github.event_name == 'push') && !false", context) is True
    assert evaluate("fromJSON('[1, 2]')", context) == [1, 2]
    assert evaluate("github.nothing == ''", context) is False  # null is not ''
    with pytest.raises(ValueError, match="unknown function"):
        evaluate("hashFiles('x')", context)


# ---------------------------------------------------------------------------------------------- a team's week
def test_previews_staging_prod_and_a_sweep_that_finishes(team: Team) -> None:
    assert "lakebase-app-staging" in team.apps()
    assert {(r.principal, deployment_of(r)) for r in team.changes()} == {(f"sp:{STAGING_ID}", "staging")}
    for number in (1, 2, 3):
        run = team.pull_request(number, "opened")
        _ok(run, "preview")
        (job,) = run.ran("preview")
        assert f"lakebase-app-pr-{number}" in job.summary, job.summary  # the URL in the run summary
        assert job.concurrency == f"preview-{number}"
    assert {"lakebase-app-pr-1", "lakebase-app-pr-2", "lakebase-app-pr-3"} <= team.apps()
    assert {"pr-1", "pr-2", "pr-3"} <= team.branches(), "previews branch from staging's project"
    # each deployment: bundle deploy, then the migrations as the owner role, then bundle run
    staging = phases(team, f"sp:{STAGING_ID}", "lakebase-app-staging", "staging", "staging/branches/production/")
    assert staging == ["deploy", "migrate", "run"]
    assert phases(team, f"sp:{PREVIEW_ID}", "lakebase-app-pr-2", "preview-2", "/branches/pr-2/") == [
        "deploy",
        "migrate",
        "run",
    ]
    assert owners(team, "lakebase_app") == {"staging_owner"} and owners(team, "lakebase_app_pr2") == {"pr2_owner"}

    # three pull requests close while their destroy never runs (a cancelled workflow): three orphans the real CLI
    # deployed, removed in one run
    team.open_prs.clear()
    run = team.event("schedule", "refs/heads/main")
    _ok(run, "preview-orphans", "preview-sweep")
    sweeps = run.ran("preview-sweep")
    assert sorted(j.matrix["pr"] for j in sweeps) == [1, 2, 3]
    assert len({j.env["HOME"] for j in sweeps}) == 3, "each destroy has its own checkout and local state"
    assert sorted(j.concurrency for j in sweeps) == ["preview-1", "preview-2", "preview-3"]
    assert all("destroyed" in j.summary for j in sweeps)
    assert not any("-pr-" in app for app in team.apps())
    assert not any(b.startswith("pr-") for b in team.branches())
    deletes = [r for r in team.changes() if r.method == "DELETE" and re.search(r"/branches/pr-\d+$", r.path)]
    assert len(deletes) == 3 and all("purge=true" in r.query for r in deletes), "purge_on_delete: nothing in the trash"
    locks = [
        unquote(r.path) for r in team.changes(f"sp:{PREVIEW_ID}") if unquote(r.path).endswith("/state/deploy.lock")
    ]
    assert len(locks) == 6, f"every preview deploy and destroy takes its lock (development mode turns it off): {locks}"

    run = team.event("push", "refs/tags/v1.0.0")
    _ok(run, "prod")
    assert run.ran("prod")[0].environment == "prod"
    assert "lakebase-app" in team.apps()
    prod = phases(team, f"sp:{PROD_ID}", "lakebase-app", "prod", "lakebase-app-db/branches/production/")
    assert prod == ["deploy", "migrate", "run"]
    assert owners(team, PROD_DATABASE) == {"prod_owner"}
    acl = team.front.admin("GET", "/api/2.0/permissions/apps/lakebase-app")["access_control_list"]
    assert any(e.get("group_name") == PROD_GROUP for e in acl), acl

    allowed = {(f"sp:{client_id}", name) for name, client_id in DEPLOYERS.items()}
    strays = [r for r in team.changes() if (r.principal, deployment_of(r)) not in allowed]
    assert strays == [], "each identity changes its own deployment's objects and no other's"
    for event, run in team.runs:
        for job in run.jobs:
            if job.result == "skipped":
                continue
            assert (
                (job.job == "prod")
                == (job.environment == "prod")
                == (event == "push" and "tags" in job.env["GITHUB_REF"])
            )
            if job.job != "prod":
                assert PROD_ID not in job.env.values(), f"{job.job} sees prod's client id"


def test_one_checkout_destroying_two_previews_fails_like_the_cli(team: Team) -> None:
    """Why the sweep gives every destroy its own job: the real CLI keys local state by target."""
    team.pull_request(1, "opened")
    team.pull_request(2, "opened")
    team.open_prs.clear()
    loop = team.root / "loop.yml"
    loop.write_text(
        (team.root / ".github" / "workflows" / "deploy.yml").read_text().split("\n  preview-orphans:")[0]
        + """
  old-sweep:
    if: github.event_name == 'schedule'
    runs-on: ubuntu-latest
    environment: preview
    permissions: {contents: read, id-token: write}
    env:
      DATABRICKS_CLIENT_ID: ${{ vars.DATABRICKS_CLIENT_ID }}
    steps:
      - uses: actions/checkout@v0
      - run: |
          for number in 1 2; do BUNDLE_VAR_pr_number=$number databricks bundle destroy -t preview --auto-approve; done
"""
    )
    run = team.event("schedule", "refs/heads/main", workflow=loop)
    (job,) = run.ran("old-sweep")
    assert job.result == "failure" and "lineage mismatch in state files" in job.log, job.log
    assert "lakebase-app-pr-2" in team.apps() and "lakebase-app-pr-1" not in team.apps()


def test_a_failed_destroy_stops_no_other_and_the_summary_says_which(team: Team) -> None:
    for number in (4, 5, 6):
        team.pull_request(number, "opened")
    team.open_prs.clear()
    # someone took CAN_MANAGE on preview 5's app away from the preview identity by hand: its destroy fails
    team.front.state.creators.pop(("apps", "lakebase-app-pr-5"))
    team.front.admin(
        "PUT",
        "/api/2.0/permissions/apps/lakebase-app-pr-5",
        {"access_control_list": [{"group_name": "admins", "permission_level": "CAN_MANAGE"}]},
    )
    run = team.event("workflow_dispatch", "refs/heads/main")
    results = {j.matrix["pr"]: j for j in run.ran("preview-sweep")}
    assert results[4].result == results[6].result == "success"
    assert results[5].result == "failure" and "destroy FAILED" in results[5].summary
    # the CLI ignores the 403 and forgets the app (bundle/direct/apply.go Delete): `previews.py gone` notices
    assert "lakebase-app-pr-5 still exist" in results[5].log, results[5].log
    assert "lakebase-app-pr-5" in team.apps() and not {"lakebase-app-pr-4", "lakebase-app-pr-6"} & team.apps()


def test_a_preview_never_outlives_its_branch(team: Team) -> None:
    team.pull_request(8, "opened")
    team.pull_request(9, "opened")
    # pr-8 was created 6 days ago: ttl counts from creation (7 days) and its pushes did not renew it
    team.front.age_branch(f"projects/{STAGING_PROJECT}/branches/pr-8", datetime.now(UTC) - timedelta(days=6))
    run = team.event("schedule", "refs/heads/main")
    assert [j.matrix["pr"] for j in run.ran("preview-sweep")] == [8]  # expires within 36 h: app and branch go
    assert "lakebase-app-pr-8" not in team.apps() and "lakebase-app-pr-9" in team.apps()
    assert "pr-8" not in team.branches() and "pr-9" in team.branches()
    # The next push builds it again on Databricks once the app's deletion has finished; the testserver keeps a
    # deleted app in DELETING for good, so that rebuild is not run here.


def test_one_pull_request_too_many_is_told_why(team: Team) -> None:
    team.pull_request(1, "opened")
    for index in range(498):  # with production and pr-1: 500, Lakebase's limit per project
        team.front.admin("POST", f"/api/2.0/postgres/projects/{STAGING_PROJECT}/branches?branch_id=b{index}", {})
    run = team.pull_request(2, "opened")
    (job,) = run.ran("preview")
    assert job.result == "failure"
    assert "already holds 500 branches, and a project holds at most 500" in job.log, job.log
    assert "lakebase-app-pr-2" not in team.apps(), "no deploy was tried"
    _ok(team.pull_request(1, "synchronize"), "preview")  # an existing preview still updates


# ---------------------------------------------------------------------------------------------- what a PR can reach
def test_no_pull_request_job_can_obtain_the_staging_or_prod_identity(team: Team) -> None:
    """Whatever a pull request's branch writes into the workflow, its jobs get no staging or prod token."""
    _ok(team.event("push", "refs/tags/v1.0.0"), "prod")
    before = {r.path for r in team.changes()}
    tries = {
        # the job names environment staging or prod: GitHub's deployment rule (main only, v* tags only) holds it
        "staging environment": ("environment: preview\n", "environment: staging\n"),
        "prod environment": ("environment: preview\n", "environment: prod\n"),
        # the job keeps environment preview but names staging's or prod's client id (ids are not secret):
        # the federation policies trust only their own environment's subject
        "staging id": ("DATABRICKS_CLIENT_ID: ${{ vars.DATABRICKS_CLIENT_ID }}", f"DATABRICKS_CLIENT_ID: {STAGING_ID}"),
        "prod id": ("DATABRICKS_CLIENT_ID: ${{ vars.DATABRICKS_CLIENT_ID }}", f"DATABRICKS_CLIENT_ID: {PROD_ID}"),
        # no environment at all: the subject is repo:<repo>:pull_request, which no policy trusts
        "no environment": ("    environment: preview\n", ""),
    }
    for number, (what, (old, new)) in enumerate(tries.items(), start=70):
        workflow = team.root / f"pr-{number}.yml"
        workflow.write_text(
            "on: [pull_request]\npermissions: {}\nenv:\n  DATABRICKS_HOST: ${{ vars.DATABRICKS_HOST }}\n"
            "  DATABRICKS_AUTH_TYPE: github-oidc\n"
            "  DATABRICKS_TOKEN_AUDIENCE: https://github.com/${{ github.repository_owner }}\njobs:"
            + _preview_job("databricks current-user me").replace(old, new)
        )
        run = team.pull_request(number, "opened", workflow)
        (job,) = run.ran("hostile")
        assert job.result == "failure", f"{what}: {job.log}"
        if "environment" in what and what != "no environment":
            assert "due to environment protection rules" in job.log, job.log
        else:
            assert "no federation policy of service principal" in job.log, job.log
    assert {r.path for r in team.changes()} == before, "nothing changed"
    granted = [r for r in team.front.requests() if r.path == "/api/2.0/preview/scim/v2/Me"]
    assert {r.principal for r in granted} <= {f"sp:{STAGING_ID}", f"sp:{PROD_ID}", f"sp:{PREVIEW_ID}"}


def test_the_preview_identity_can_change_no_staging_or_prod_object(team: Team) -> None:
    """A pull request that rewrites the preview job runs as the preview identity: it cannot deploy staging or prod."""
    _ok(team.event("push", "refs/tags/v1.0.0"), "prod")
    guarded = lambda: {  # noqa: E731
        name: team.front.admin("GET", f"/api/2.0/apps/{name}").get("update_time")
        for name in ("lakebase-app-staging", "lakebase-app")
    }
    before = guarded()
    for target in ("staging", "prod"):
        hostile = _hostile(
            team, "python3 scripts/deploy.py deploy preview\n", f"python3 scripts/deploy.py deploy {target}\n"
        )
        run = team.pull_request(60 + len(team.runs), "opened", hostile)
        (job,) = run.ran("preview")
        assert job.result == "failure" and re.search(r"ALREADY_EXISTS|PERMISSION_DENIED|does not have", job.log), (
            job.log
        )
    for app in ("lakebase-app-staging", "lakebase-app"):
        hostile = _hostile(
            team,
            "python3 scripts/deploy.py deploy preview\n",
            f"databricks apps deploy {app} --source-code-path /Workspace/Shared/x\n",
        )
        run = team.pull_request(80 + len(team.runs), "opened", hostile)
        (job,) = run.ran("preview")
        assert job.result == "failure" and f"does not have CAN_MANAGE on app {app}" in job.log, job.log
    hostile = _hostile(
        team,
        "python3 scripts/deploy.py deploy preview\n",
        f"databricks postgres delete-project projects/{STAGING_PROJECT}\n",
    )
    (job,) = team.pull_request(90, "opened", hostile).ran("preview")
    assert job.result == "failure" and f"does not have CAN_MANAGE on project {STAGING_PROJECT}" in job.log, job.log
    assert guarded() == before
    own_home = f"/Users/{PREVIEW_ID}/"
    touched = [
        r
        for r in team.changes(f"sp:{PREVIEW_ID}")
        if deployment_of(r) != "preview" and own_home not in json.dumps(r.body) + unquote(r.path)
    ]
    assert touched == [], touched


def test_the_federation_policy_the_readme_gives_matches_what_the_workflow_asks_for(team: Team) -> None:
    """The README's policy audience is the one every job asks GitHub for; without the workflow's
    DATABRICKS_TOKEN_AUDIENCE the SDK asks for the workspace's default audience, which no policy names."""
    audiences = {claims["aud"] for claims in team.oidc.issued}
    assert audiences == {policy_audience(project_docs(team.root))}, audiences
    workflow = _hostile(team, "  DATABRICKS_TOKEN_AUDIENCE:", "  UNUSED_AUDIENCE:")
    (job,) = team.pull_request(3, "opened", workflow).ran("preview")
    assert job.result == "failure" and "no federation policy of service principal" in job.log, job.log
    assert f"audience {team.front.url}/oidc/v1/token" in job.log, job.log


def test_provisioned_deploys_prod_from_a_tag_only(
    tmp_path: Path, fake_workspace: FakeWorkspace, pg_server: Any
) -> None:
    team = Team(
        tmp_path,
        fake_workspace,
        pg_server,
        framework="flask",
        driver="psycopg3",
        lakebase="provisioned",
        create_database=False,
    )
    try:
        bundle = team.root / "databricks.yml"
        text = bundle.read_text()
        text = text.replace(
            "# lakebase_instance: <instance name>\n      # database_name: <database>",
            "lakebase_instance: team-instance\n      database_name: app",
        )
        bundle.write_text(text)
        # the team's existing instance and its database, owned by prod's identity
        team.front.admin("POST", "/api/2.0/database/instances", {"name": "team-instance", "capacity": "CU_1"})
        team.lakebase.database_created(PROD_ID, "team-instance", "app", "app", PROD_ID)
        assert team.pull_request(3, "opened").jobs == []  # no previews without branches
        _ok(team.event("push", "refs/tags/v2.0.0"), "prod")
        assert "lakebase-app" in team.apps()
    finally:
        team.close()


# ---------------------------------------------------------------------------------------------- schema changes
def migration(root: Path, revision: str, down: str, slug: str, statement: str, additive: bool = True) -> None:
    """A new migration file, as `python -m database.migrate revision` writes one (script.py.mako)."""
    (root / "app" / "migrations" / "versions" / f"{revision}_{slug}.py").write_text(
        f'"""{slug.replace("_", " ")}\n\nRevision ID: {revision}\nRevises: {down}\n"""\n\n'
        "from alembic import op\n\n"
        f'revision = "{revision}"\ndown_revision = "{down}"\nadditive = {additive}\n\n\n'
        f"def upgrade() -> None:\n    op.execute({statement!r})\n"
    )


def head_revision(root: Path) -> str:
    return max(p.name[:4] for p in (root / "app" / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def test_a_tag_whose_migration_fails_on_the_rehearsal_branch_never_deploys_prod(team: Team) -> None:
    _ok(team.event("push", "refs/tags/v1.0.0"), "prod")
    base = head_revision(team.root)
    # prod's data: a row that the next release's migration cannot take (a NOT NULL column without a default)
    team.sql(PROD_DATABASE, "INSERT INTO app_data.items (owner, title) VALUES ('ann@acme.example', 'ship it')")
    migration(team.root, "0099", base, "add_a_code", "ALTER TABLE app_data.items ADD COLUMN code text NOT NULL")
    runs_before = [r for r in team.front.requests() if r.path == "/api/2.0/apps/lakebase-app/deployments"]
    run = team.event("push", "refs/tags/v1.1.0")
    (job,) = run.ran("prod")
    assert job.result == "failure", job.log
    assert "Prod rehearsal FAILED" in job.summary and "contains null values" in job.summary, job.summary
    assert "ann@acme.example" not in job.summary, "the summary shows the migration's error, never a row"
    assert "[run Deploy prod" not in job.log, "the deploy step never ran"
    runs_after = [r for r in team.front.requests() if r.path == "/api/2.0/apps/lakebase-app/deployments"]
    assert runs_after == runs_before, "prod's app got no new code"
    assert team.branches("lakebase-app-db") == {"production"}, "the rehearsal branch is gone"
    made = [r for r in team.changes(f"sp:{PROD_ID}") if "/branches?branch_id=rehearsal-" in f"{r.path}?{r.query}"]
    assert len(made) == 1, "the prod identity branched prod's project for the rehearsal"
    assert team.sql(PROD_DATABASE, "SELECT version_num FROM app_data.alembic_version") == [(base,)], "prod untouched"

    # the fixed migration passes the rehearsal and reaches prod
    migration(
        team.root, "0099", base, "add_a_code", "ALTER TABLE app_data.items ADD COLUMN code text NOT NULL DEFAULT ''"
    )
    run = team.event("push", "refs/tags/v1.1.1")
    _ok(run, "prod")
    assert "Prod rehearsal: the migrations ran" in run.ran("prod")[0].summary
    assert team.sql(PROD_DATABASE, "SELECT version_num FROM app_data.alembic_version") == [("0099",)]
    assert team.branches("lakebase-app-db") == {"production"}


def test_a_pull_requests_summary_shows_its_schema_change(tmp_path: Path) -> None:
    root = render(tmp_path / "render", framework="flask", driver="psycopg2")
    git = lambda *args: subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True)  # noqa: E731
    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@acme.example", "-c", "user.name=t", "commit", "-qam", "base", "--allow-empty")
    git("add", "-A")
    git("-c", "user.email=t@acme.example", "-c", "user.name=t", "commit", "-qm", "base")
    base_sha = git("rev-parse", "HEAD").stdout.strip()
    base = head_revision(root)
    migration(root, "0098", base, "add_a_due_date", "ALTER TABLE app_data.items ADD COLUMN due date")
    migration(root, "0099", "0098", "drop_done", "ALTER TABLE app_data.items DROP COLUMN done", additive=False)
    git("add", "-A")
    git("-c", "user.email=t@acme.example", "-c", "user.name=t", "commit", "-qm", "pr")
    ci = yaml.safe_load((root / ".github" / "workflows" / "ci.yml").read_text())
    ci["jobs"] = {"schema-change": ci["jobs"]["schema-change"]}  # the test job needs a PostgreSQL service
    workflow = tmp_path / "schema-change.yml"
    workflow.write_text(yaml.safe_dump(ci))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3"
    python.write_text(
        f'#!/bin/sh\n[ "$1 $2 $3" = "-m pip install" ] && echo "requirements preinstalled" && exit 0\n'
        f'exec "{app_python()}" "$@"\n'
    )
    python.chmod(0o755)
    payload = {"action": "opened", "number": 7, "pull_request": {"number": 7, "base": {"sha": base_sha}}}
    runner = Runner(Repository(root, REPO), bin_dir, tmp_path / "runs", {"PATH": "/usr/local/bin:/usr/bin:/bin"})
    run = run_workflow(workflow, "pull_request", "refs/pull/7/merge", payload, runner)
    (job,) = run.ran("schema-change")
    assert job.result == "success", job.log
    summary = job.summary
    assert f"after {base}" in summary and f"{base}_" not in summary.split(f"after {base}", 1)[1], summary
    assert "0098_add_a_due_date.py" in summary and "ADD COLUMN due date" in summary, summary
    assert "0099_drop_done.py" in summary and "DROP COLUMN done" in summary, summary
    due, drop = summary.split("0099_drop_done.py")
    assert "additive" in due and "not additive" not in due.split("0098_add_a_due_date.py")[1], summary
    assert "**not additive**" in drop, summary


def readme_deploy_line(root: Path) -> list[str]:
    """The rendered README's "Deploy to dev": install the CLI, log in, then the one deploy command, in that order."""
    section = (root / "README.md").read_text().split("## Deploy to dev\n", 1)[1].split("\n## ", 1)[0]
    steps = ["Install the Databricks CLI", "databricks auth login --host", "DATABRICKS_CONFIG_PROFILE", "deploy.py"]
    places = [section.find(step) for step in steps]
    assert -1 not in places and places == sorted(places), dict(zip(steps, places, strict=True))
    (line,) = [line.strip() for line in section.splitlines() if "scripts/deploy.py deploy dev" in line]
    return shlex.split(line)


def test_a_developer_deploys_dev_with_one_command(team: Team) -> None:
    """The README's `.venv/bin/python scripts/deploy.py deploy dev`: deploy, migrations as the owner role, run."""
    command = readme_deploy_line(team.root)
    assert command[0] == ".venv/bin/python", command  # the project's venv (here the one the tests share)
    env = {
        "PATH": f"{team.bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(team.scratch / "developer"),
        "DATABRICKS_HOST": team.front.url,
        "DATABRICKS_TOKEN": team.front.user_token,
        "DO_NOT_TRACK": "1",
        # dev's database is in the developer's own project on Lakebase; here it needs a name of its own
        "BUNDLE_VAR_database_name": "lakebase_app_dev",
        **team.database_env(),
    }
    done = subprocess.run(
        [str(app_python()), *command[1:]],
        cwd=team.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    user = "user:tester@databricks.com"
    assert phases(team, user, "lakebase-app-tester", "dev", "lakebase-app-db-tester/branches/production/") == [
        "deploy",
        "migrate",
        "run",
    ]
    assert owners(team, "lakebase_app_dev") == {"dev_owner"}


# ---------------------------------------------------------------------------------------------- the audit
def zizmor(workflows: Path) -> list[str]:
    """zizmor (PyPI, requirements-dev.txt) offline audits at medium severity or above: `ident severity file`."""
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "zizmor"),
            "--offline",
            "--format=json",
            "--min-severity=medium",
            str(workflows),
        ],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert done.returncode in (0, 10, 11, 12, 13, 14), done.stderr  # 1x: findings, the highest severity in x
    return [
        f"{f['ident']} {f['determinations']['severity']} {f['locations'][0]['symbolic']['key']['Local'].get('verbatim_path', '?')}"
        for f in json.loads(done.stdout or "[]")
    ]


@pytest.mark.parametrize(
    "answers",
    [{}, {"create_database": False}, {"lakebase": "provisioned", "create_database": False}],
    ids=["autoscaling-create", "autoscaling-existing", "provisioned"],
)
def test_rendered_workflows_pass_the_audit(tmp_path: Path, answers: dict[str, Any]) -> None:
    root = render(tmp_path, **answers)
    assert sorted(p.name for p in (root / ".github" / "workflows").iterdir()) == ["ci.yml", "deploy.yml"]
    assert zizmor(root / ".github" / "workflows") == []


def test_the_template_repositorys_own_workflow_runs_the_readme_command_and_passes_the_audit() -> None:
    workflows = ROOT / ".github" / "workflows"
    assert zizmor(workflows) == []
    (workflow,) = [yaml.safe_load(p.read_text()) for p in workflows.glob("*.yml")]
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers and "pull_request" in triggers
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    assert runs == ["bash scripts/test.sh"] and "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in (ROOT / "README.md").read_text()


def test_the_audit_sees_what_it_must(tmp_path: Path) -> None:
    """The findings the rendered workflows had before (issue 14: 17 at medium or above) are still findings."""
    bad = tmp_path / "workflows"
    bad.mkdir()
    (bad / "bad.yml").write_text(
        "on: [push]\npermissions:\n  id-token: write\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - uses: databricks/setup-cli@v1.13.0\n"
        '      - run: echo "${{ github.event.head_commit.message }}"\n'
    )
    found = {line.split()[0] for line in zizmor(bad / "bad.yml")}
    assert {"unpinned-uses", "artipacked", "template-injection"} <= found, found


def test_dependabot_keeps_pins_and_requirements_current(tmp_path: Path) -> None:
    config = yaml.safe_load((render(tmp_path) / ".github" / "dependabot.yml").read_text())
    updates = {(u["package-ecosystem"], u["directory"]) for u in config["updates"]}
    assert {("github-actions", "/"), ("pip", "/app"), ("pip", "/"), ("gomod", "/.github/databricks-cli")} <= updates
    for path in (render(tmp_path / "p", lakebase="provisioned", create_database=False) / ".github").rglob("*.yml"):
        for line in path.read_text().splitlines():
            if "uses:" in line:  # a full commit SHA and the version beside it, which Dependabot updates together
                assert re.search(r"@[0-9a-f]{40}  # v\d+\.\d+\.\d+$", line), line


def test_the_cli_the_workflows_build_is_the_one_the_tests_deploy_with(tmp_path: Path) -> None:
    """The rendered .github/databricks-cli pins the CLI release, and every module checksum, of
    tests/databricks_cli/newest (which scripts/databricks-cli.sh builds for the workflow runs above), at or above
    the bundle's databricks_cli_version floor; a plain `go build` there would report a dev version instead."""
    root = render(tmp_path)
    module = root / ".github" / "databricks-cli"
    pin = re.compile(r"^require github\.com/databricks/cli (v[0-9.]+)", re.M)
    built, ours = (
        pin.search((module / "go.mod").read_text()),
        pin.search((ROOT / "tests" / "databricks_cli" / "newest" / "go.mod").read_text()),
    )
    assert built and ours and built.group(1) == ours.group(1), (built, ours)
    sums = set((module / "go.sum").read_text().splitlines())
    assert sums and sums <= set((ROOT / "tests" / "databricks_cli" / "newest" / "go.sum").read_text().splitlines())
    floor = re.search(r'databricks_cli_version: ">= ([0-9.]+)"', (root / "databricks.yml").read_text())
    assert floor and tuple(map(int, built.group(1)[1:].split("."))) >= tuple(map(int, floor.group(1).split(".")))
    script = (module / "build.sh").read_text()
    assert "-mod=readonly" in script and "internal/build.buildVersion=" in script, script
