"""Day two: a project can be re-rendered from its recorded answers, updated from a newer template, and has CI."""

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.template import ROOT, render

GIT = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "-c", "init.defaultBranch=main"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def same_tree(a: Path, b: Path) -> bool:
    compare = filecmp.dircmp(a, b)
    if compare.left_only or compare.right_only or compare.diff_files or compare.funny_files:
        return False
    return all(same_tree(a / sub, b / sub) for sub in compare.common_dirs)


def test_recorded_answers_replay_to_the_same_project(tmp_path: Path) -> None:
    first = render(
        tmp_path / "first", project_name="Team Board", framework="dash", driver="psycopg2", max_instances="2"
    )
    second_root = tmp_path / "second"
    second_root.mkdir()
    replay = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--replay-file", str(first / ".cookiecutter.json"), str(ROOT)]
        + ["-o", str(second_root)],
        capture_output=True,
        text=True,
    )
    assert replay.returncode == 0, replay.stderr
    assert same_tree(first, second_root / first.name)


def test_cruft_update_brings_template_changes_and_keeps_local_ones(tmp_path: Path) -> None:
    oldest = git(ROOT, "rev-list", "--max-parents=0", "HEAD")  # the template's first commit
    current = git(ROOT, "rev-parse", "HEAD")
    cruft = [sys.executable, "-m", "cruft"]
    subprocess.run(
        [
            *cruft,
            "create",
            str(ROOT),
            "--checkout",
            oldest,
            "--no-input",
            "--extra-context",
            '{"project_name": "Team Board"}',
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    project = tmp_path / "team_board"
    assert not (project / ".github").exists()  # the first template had no CI workflow
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "rendered from the first template")
    own = project / "app" / "database" / "settings.py"  # in the first template and still here
    own.write_text(own.read_text() + "\n# A team's own addition, which an update must keep.\n")
    git(project, "commit", "-qam", "local change")
    before = git(project, "rev-parse", "HEAD")

    update = [*cruft, "update", "--skip-apply-ask", "--checkout", current]
    # Its .cruft.json answers lakebase=autoscaling and create_database=yes, two questions the template now asks as
    # one: nothing guesses which setup it has (docs/updating.md), and nothing changes until the project says.
    guessed = subprocess.run(update, cwd=project, capture_output=True, text=True)
    assert guessed.returncode != 0
    said = " ".join((guessed.stdout + guessed.stderr).replace("│", " ").split())
    assert "autoscaling provided for choice variable lakebase, but the choices are" in said, said
    assert git(project, "status", "--porcelain") == "" and git(project, "rev-parse", "HEAD") == before
    old_answers = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
    assert (old_answers["lakebase"], old_answers["create_database"], old_answers["database_name"]) == (
        "autoscaling",
        True,
        "databricks_postgres",
    )

    named = json.dumps({"lakebase": "new-autoscaling", "database_name": "team_board"})  # as docs/updating.md says
    update = subprocess.run([*update, "--variables-to-update", named], cwd=project, capture_output=True, text=True)
    assert update.returncode == 0, update.stdout + update.stderr
    answers = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
    assert answers["lakebase"] == "new-autoscaling" and "create_database" not in answers
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    assert bundle["variables"]["database_name"]["default"] == "team_board"
    assert "postgres_projects" in bundle["targets"]["dev"]["resources"]  # still the project dev creates
    assert "A team's own addition" in own.read_text()
    assert (project / ".github" / "workflows" / "ci.yml").exists()
    assert (project / ".yamllint.yaml").exists()
    assert '"commit": "' + current in (project / ".cruft.json").read_text()
    assert "def healthy()" in (project / "app" / "database" / "__init__.py").read_text()


def test_rendered_ci_workflow_lints_and_tests_every_push_and_pull_request(tmp_path: Path) -> None:
    root = render(tmp_path)
    workflow = yaml.safe_load((root / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["branches"] == ["main"] and "pull_request" in triggers
    test_steps = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    assert "ruff check . && ruff format --check ." in test_steps and "python local/run.py test" in test_steps
    assert any("requirements-dev.txt" in run for run in test_steps)
    assert "services" not in workflow["jobs"]["test"]  # the embedded PostgreSQL: no container image to pin
    # deployments live in deploy.yml; a pull request's schema change is shown by a job that holds no credential
    assert list(workflow["jobs"]) == ["test", "schema-change"]
    assert "secrets." not in yaml.safe_dump(workflow["jobs"]["schema-change"])
