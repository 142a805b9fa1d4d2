"""The rendered deploy workflow, run: its `run:` steps under `bash -e` (tests/support/workflow_runner.py) with
stand-in `databricks` and `gh` first on PATH (tests/support/standins/, each behaviour citing its CLI source), for
the events a team produces: pushes to main, pull requests opened and closed, a release tag, the nightly sweep.
Every CLI call is recorded with the identity it ran as."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import bundle_checks as checks
from tests.support.template import ROOT, render
from tests.support.waiting import HANG_GUARD
from tests.support.workflow_runner import Repository, Run, Runner, evaluate, run_workflow

STANDINS = Path(__file__).parent / "support" / "standins"
PROD_ID, PREVIEW_ID = "prod-deployer-client-id", "preview-deployer-client-id"
REPO = "acme/board"
PROD_GROUP = "board-users"  # what the team writes in targets.prod.variables
TEAM_GROUP = "board-team"  # and as variables.team_group's default


class Team:
    """A rendered project on GitHub, a workspace with two deploying service principals, and the calls they make."""

    def __init__(self, tmp: Path, **answers: Any) -> None:
        self.root = render(tmp / "render", **answers)
        bundle = self.root / "databricks.yml"
        text = bundle.read_text().replace("# app_users: <group>", f"app_users: {PROD_GROUP}")
        bundle.write_text(text.replace("# default: <your team's workspace group>", f"default: {TEAM_GROUP}"))
        self.scratch = tmp / "runs"
        self.workspace = tmp / "workspace"
        self.bin = tmp / "bin"
        for path in (self.scratch, self.workspace, self.bin):
            path.mkdir()
        for name in ("databricks", "gh"):
            wrapper = self.bin / name
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDINS / name}.py" "$@"\n')
            wrapper.chmod(0o755)
        (self.bin / "python3").symlink_to(sys.executable)
        self.world = {
            "principals": {  # one federation policy subject per environment (README: "Identities")
                PROD_ID: {"user_name": checks.CI.user_name, "trusts": [f"repo:{REPO}:environment:prod"]},
                PREVIEW_ID: {
                    "user_name": checks.PREVIEW_CI.user_name,
                    "trusts": [f"repo:{REPO}:environment:preview", f"repo:{REPO}:environment:staging"],
                },
            },
            "objects": {},
            "trash": [],
            "remote_states": {},
        }
        self.save()
        self.open_prs: list[int] = []
        self.repository = Repository(
            self.root,
            REPO,
            variables={"DATABRICKS_HOST": "https://standin.cloud.databricks.com"},
            environments={  # environment variables, never repository ones
                "prod": {"DATABRICKS_CLIENT_ID": PROD_ID},
                "staging": {"DATABRICKS_CLIENT_ID": PREVIEW_ID},
                "preview": {"DATABRICKS_CLIENT_ID": PREVIEW_ID},
            },
        )
        self.runs: list[tuple[str, Run]] = []

    def save(self) -> None:
        (self.workspace / "workspace.json").write_text(json.dumps(self.world))

    def load(self) -> dict[str, Any]:
        self.world = json.loads((self.workspace / "workspace.json").read_text())
        return self.world

    def event(self, name: str, ref: str, payload: dict[str, Any] | None = None, workflow: Path | None = None) -> Run:
        (self.workspace / "open_prs.json").write_text(json.dumps(self.open_prs))
        scratch = self.scratch / str(len(self.runs))
        scratch.mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(ROOT),
            "STANDIN_WORKSPACE": str(self.workspace),
        }
        path = workflow or self.root / ".github" / "workflows" / "deploy.yml"
        run = run_workflow(path, name, ref, payload or {}, Runner(self.repository, self.bin, scratch, env))
        self.runs.append((name, run))
        self.load()
        return run

    def pull_request(self, number: int, action: str) -> Run:
        if action in ("opened", "reopened"):
            self.open_prs.append(number)
        elif action == "closed":
            self.open_prs.remove(number)
        payload = {
            "action": action,
            "number": number,
            "pull_request": {"number": number, "head": {"repo": {"full_name": REPO}}},
        }
        return self.event("pull_request", f"refs/pull/{number}/merge", payload)

    def calls(self) -> list[dict[str, Any]]:
        lines = (self.workspace / "calls.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def apps(self) -> set[str]:
        return {name.split(":", 1)[1] for name in self.world["objects"] if name.startswith("apps:")}


def _ok(run: Run, *jobs: str) -> None:
    ran = {j.job for j in run.jobs if j.result != "skipped"}
    assert ran == set(jobs), f"ran {ran}, expected {set(jobs)}"
    for job in run.jobs:
        assert job.result in ("success", "skipped"), f"{job.job} {job.matrix} failed:\n{job.log}"


@pytest.fixture
def team(tmp_path: Path) -> Team:
    """A team whose main has been pushed once: staging, the project previews branch from, exists."""
    made = Team(tmp_path, framework="fastapi", driver="psycopg3")
    _ok(made.event("push", "refs/heads/main"), "staging")
    return made


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
    assert [c["client_id"] for c in team.calls() if c.get("target") == "staging"] == [PREVIEW_ID] * 2
    for number in (1, 2, 3):
        run = team.pull_request(number, "opened")
        _ok(run, "preview")
        (job,) = run.ran("preview")
        assert f"https://lakebase-app-pr-{number}-1234" in job.summary, job.summary  # the URL in the run summary
        assert job.concurrency == f"preview-{number}"
    assert {"lakebase-app-pr-1", "lakebase-app-pr-2", "lakebase-app-pr-3"} <= team.apps()
    branch = "postgres_branches:projects/lakebase-app-db-staging/branches/pr-2"
    assert branch in team.world["objects"], "previews branch from staging's project"

    # three pull requests close while their destroy never runs (a cancelled workflow): three orphans
    team.open_prs.clear()
    run = team.event("schedule", "refs/heads/main")
    _ok(run, "preview-orphans", "preview-sweep")
    sweeps = run.ran("preview-sweep")
    assert sorted(j.matrix["pr"] for j in sweeps) == [1, 2, 3]
    assert len({j.env["HOME"] for j in sweeps}) == 3, "each destroy has its own checkout and local state"
    assert [j.concurrency for j in sorted(sweeps, key=lambda j: j.matrix["pr"])] == [
        "preview-1",
        "preview-2",
        "preview-3",
    ]
    assert all("destroyed" in j.summary for j in sweeps)
    assert not any("-pr-" in app for app in team.apps())
    assert not any("/branches/pr-" in name for name in team.world["objects"])
    assert not any("/branches/pr-" in name for name in team.world["trash"]), "purge_on_delete: nothing in the trash"
    changes = [c for c in team.calls() if c.get("target") == "preview" and c["argv"][1] in ("deploy", "destroy")]
    assert len(changes) == 6 and all(c["lock"] for c in changes), "development mode would turn the lock off"
    assert {c["client_id"] for c in changes} == {PREVIEW_ID}

    run = team.event("push", "refs/tags/v1.0.0")
    _ok(run, "prod")
    assert run.ran("prod")[0].environment == "prod"
    assert "lakebase-app" in team.apps()
    permissions = team.world["objects"]["apps:lakebase-app"]["spec"]["permissions"]
    assert {"level": "CAN_USE", "group_name": PROD_GROUP} in permissions

    prod_calls = [c for c in team.calls() if c.get("target") == "prod"]
    assert prod_calls and all(c["client_id"] == PROD_ID and c["exit"] == 0 for c in prod_calls)
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
    others = [c for c in team.calls() if c.get("client_id") == PROD_ID]
    assert {c.get("target") for c in others} == {"prod"}, "prod's identity only ever deploys prod"


def test_one_checkout_destroying_two_previews_fails_like_the_cli(team: Team) -> None:
    """Why the sweep gives every destroy its own job: local state is keyed by target (stand-in A3)."""
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
    app = team.world["objects"]["apps:lakebase-app-pr-5"]["spec"]
    app["permissions"] = [p for p in app["permissions"] if p["level"] != "CAN_MANAGE"]
    team.save()
    run = team.event("workflow_dispatch", "refs/heads/main")
    results = {j.matrix["pr"]: j for j in run.ran("preview-sweep")}
    assert results[4].result == results[6].result == "success"
    assert results[5].result == "failure" and "destroy FAILED" in results[5].summary
    assert "lakebase-app-pr-5" in team.apps() and not {"lakebase-app-pr-4", "lakebase-app-pr-6"} & team.apps()


def test_a_preview_never_outlives_its_branch(team: Team) -> None:
    team.pull_request(8, "opened")
    team.pull_request(9, "opened")
    # pr-8 was created 6 days ago: ttl counts from creation (7 days) and its pushes did not renew it
    branch = team.world["objects"]["postgres_branches:projects/lakebase-app-db-staging/branches/pr-8"]
    branch["expire_time"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    team.save()
    run = team.event("schedule", "refs/heads/main")
    assert [j.matrix["pr"] for j in run.ran("preview-sweep")] == [8]  # expires within 36 h: app and branch go
    assert "lakebase-app-pr-8" not in team.apps() and "lakebase-app-pr-9" in team.apps()
    _ok(team.pull_request(8, "synchronize"), "preview")  # the next push builds it again
    assert "lakebase-app-pr-8" in team.apps()


def test_a_reopened_pull_request_gets_its_preview_again(team: Team, tmp_path: Path) -> None:
    _ok(team.pull_request(5, "opened"), "preview")
    _ok(team.pull_request(5, "closed"), "preview-destroy")
    assert "lakebase-app-pr-5" not in team.apps()
    _ok(team.pull_request(5, "reopened"), "preview")
    # without purge_on_delete the old branch waits in the trash and (stand-in A6, cautious) blocks its id
    bundle = team.root / "databricks.yml"
    bundle.write_text(bundle.read_text().replace("ttl: 604800s\n          purge_on_delete: true", "ttl: 604800s"))
    _ok(team.pull_request(5, "synchronize"), "preview")  # the state now says: soft delete
    _ok(team.pull_request(5, "closed"), "preview-destroy")
    run = team.pull_request(5, "reopened")
    (job,) = run.ran("preview")
    assert job.result == "failure" and "soft-deleted" in job.log


def test_one_pull_request_too_many_is_told_why(team: Team) -> None:
    team.pull_request(1, "opened")
    project = "projects/lakebase-app-db-staging"
    for index in range(498):  # with production and pr-1: 500, Lakebase's limit per project
        team.world["objects"][f"postgres_branches:{project}/branches/b{index}"] = {"spec": {}}
    team.save()
    run = team.pull_request(2, "opened")
    (job,) = run.ran("preview")
    assert job.result == "failure"
    assert "already holds 500 branches, and a project holds at most 500" in job.log, job.log
    assert not any(
        c.get("target") == "preview"
        and c["argv"][1] == "deploy"
        and c["bundle_vars"].get("BUNDLE_VAR_pr_number") == "2"
        for c in team.calls()
    ), "no deploy was tried"
    _ok(team.pull_request(1, "synchronize"), "preview")  # an existing preview still updates


def test_a_pull_request_cannot_reach_prod(team: Team) -> None:
    """What someone with push rights could do: change the workflow in their branch to deploy prod."""
    team.event("push", "refs/tags/v1.0.0")
    before = json.dumps(team.world["objects"], sort_keys=True)
    hostile = team.root / "hostile.yml"
    hostile.write_text(
        (team.root / ".github" / "workflows" / "deploy.yml")
        .read_text()
        .replace("databricks bundle deploy -t preview\n", "databricks bundle deploy -t prod\n")
    )
    payload = {"action": "opened", "number": 66, "pull_request": {"number": 66, "head": {"repo": {"full_name": REPO}}}}
    team.open_prs.append(66)
    run = team.event("pull_request", "refs/pull/66/merge", payload, workflow=hostile)
    (job,) = run.ran("preview")
    assert job.result == "failure" and "ALREADY_EXISTS" in job.log, job.log
    assert json.dumps(team.world["objects"], sort_keys=True) == before, "prod changed"
    # a job that names environment prod gets prod's subject, but GitHub's environment rule (tags v* only) holds it
    # back: README "Identities". A job without the environment has no prod client id at all.
    sweep = team.event("workflow_dispatch", "refs/heads/feature")
    assert not [j for j in sweep.jobs if j.result != "skipped"], "the sweep runs from main only"


def test_provisioned_deploys_prod_from_a_tag_only(tmp_path: Path) -> None:
    team = Team(tmp_path, framework="flask", driver="psycopg3", lakebase="provisioned", create_database=False)
    bundle = team.root / "databricks.yml"
    text = bundle.read_text()
    text = text.replace(
        "# lakebase_instance: <instance name>\n      # database_name: <database>",
        "lakebase_instance: team-instance\n      database_name: app",
    )
    bundle.write_text(text)
    assert team.pull_request(3, "opened").jobs == []  # no previews without branches
    _ok(team.event("push", "refs/tags/v2.0.0"), "prod")
    assert "lakebase-app" in team.apps()


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
    assert {("github-actions", "/"), ("pip", "/app"), ("pip", "/")} <= updates
    for path in (render(tmp_path / "p", lakebase="provisioned", create_database=False) / ".github").rglob("*.yml"):
        for line in path.read_text().splitlines():
            if "uses:" in line:  # a full commit SHA and the version beside it, which Dependabot updates together
                assert re.search(r"@[0-9a-f]{40}  # v\d+\.\d+\.\d+$", line), line
