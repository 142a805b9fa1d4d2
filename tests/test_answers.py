"""Bad answers are refused clearly, leave no directory, and injection attempts stay inert."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from cookiecutter.environment import StrictEnvironment
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from databricks.bundles.apps import App

from tests.support.template import CONFIG, ROOT, free_text_questions, render, render_cli, run_cookiecutter
from tests.support.waiting import HANG_GUARD

BAD_ANSWERS = [
    ("project_name", "", "empty"),
    ("project_name", "x" * 61, "too long"),
    ("project_slug", "My_App", "uppercase"),
    ("project_slug", "my app", "space"),
    ("app_name", "My-App", "uppercase"),
    ("app_name", "a" * 27, "too long for a dev- prefix"),
    ("app_name", "my app", "space"),
    ("app_name", "my-app-", "trailing hyphen"),
    ("app_name", "my'app", "quote"),
    ("app_name", "my-app;rm", "shell metacharacter"),
    ("app_name", "my-app$(id)", "command substitution"),
    ("description", 'say "hi"', "double quote"),
    ("description", "line one\nline two", "newline"),
    ("description", "`id`", "backtick"),
    ("project_name", "{{ 7 * 7 }}", "Jinja expression"),
    ("schema_name", "", "empty"),
    ("schema_name", "public", "public"),
    ("schema_name", "pg_app", "pg_ prefix"),
    ("schema_name", "select", "SQL keyword"),
    ("schema_name", "App", "uppercase"),
    ("schema_name", "app data", "space"),
    ("schema_name", "app;drop", "semicolon"),
    ("schema_name", "a" * 64, "too long"),
    ("database_name", "Postgres", "uppercase"),
    ("lakebase_name", "Lake_Base", "underscore and uppercase"),
    ("pool_max_size", "0", "zero"),
    ("pool_max_size", "ten", "not a number"),
    ("framework", "django", "not a choice"),
    ("max_instances", "11", "too many"),
]


def test_connection_budget_is_enforced(tmp_path: Path) -> None:
    result = render_cli(tmp_path / "out", "framework=flask", "max_instances=10", "pool_max_size=5")
    assert result.returncode != 0
    assert "= 100 connections is over the 90" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert render_cli(tmp_path / "ok", "framework=flask", "max_instances=9", "pool_max_size=5").returncode == 0
    (project,) = (tmp_path / "ok").iterdir()
    (app,) = yaml.safe_load((project / "databricks.yml").read_text())["resources"]["apps"].values()
    parsed = App.from_dict(app)
    assert (parsed.compute_min_instances, parsed.compute_max_instances) == (1, 9)


@pytest.mark.parametrize(("field", "value", "why"), BAD_ANSWERS, ids=[f"{f}-{w}" for f, _, w in BAD_ANSWERS])
def test_bad_answer_is_refused_with_a_specific_message(tmp_path: Path, field: str, value: str, why: str) -> None:
    out = tmp_path / "out"
    result = render_cli(out, f"{field}={value}")
    assert result.returncode != 0
    if field == "framework":  # cookiecutter itself rejects an unknown choice, naming the valid ones
        assert "choice variable framework" in result.stderr and "'fastapi'" in result.stderr, result.stderr
    else:
        assert f"{field}=" in result.stderr, result.stderr
        assert "invalid" in result.stderr and "for example" in result.stderr, result.stderr
    assert not out.exists() or not any(out.iterdir()), "a refused generation left files behind"


def test_refused_combination_names_the_valid_choices(tmp_path: Path) -> None:
    result = render_cli(tmp_path / "out", "framework=flask", "driver=asyncpg")
    assert result.returncode != 0
    assert 'driver="asyncpg", framework="flask" is not supported' in result.stderr
    assert "framework=fastapi or framework=gradio" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


INJECTION = "x'''); __import__('pathlib').Path('PWNED').touch() #"
INJECTION_DOUBLE_QUOTES = 'x"""); __import__("pathlib").Path("PWNED").touch() #'


def test_python_injection_in_an_answer_is_inert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = render(tmp_path / "out", description=INJECTION)
    assert not list(tmp_path.rglob("PWNED")), "the answer ran as code"
    bundle = yaml.safe_load((root / "databricks.yml").read_text())
    (app,) = bundle["resources"]["apps"].values()
    assert app["description"] == INJECTION  # kept verbatim, as data


REFUSED_INJECTIONS = [
    ("schema_name", INJECTION),
    ("project_name", INJECTION),
    ("schema_name", INJECTION_DOUBLE_QUOTES),
    ("project_name", INJECTION_DOUBLE_QUOTES),
    ("description", INJECTION_DOUBLE_QUOTES),
]


@pytest.mark.parametrize(("field", "attempt"), REFUSED_INJECTIONS)
def test_injection_attempt_in_a_validated_field_is_refused_and_inert(tmp_path: Path, field: str, attempt: str) -> None:
    result = render_cli(tmp_path / "out", f"{field}={attempt}")
    assert result.returncode != 0 and f"{field}=" in result.stderr, result.stderr
    assert not list(tmp_path.rglob("PWNED")), "the answer ran as code"


def test_defaults_render(tmp_path: Path) -> None:
    config = json.loads((Path(__file__).parent.parent / "cookiecutter.json").read_text())
    assert config["lakebase"][0] == "new-autoscaling"
    root = render(tmp_path)
    assert root.name == "lakebase_app"
    assert "postgres_projects" in (root / "databricks.yml").read_text()


@pytest.mark.parametrize("lakebase", ["new-autoscaling", "existing-autoscaling", "existing-provisioned"])
def test_databricks_postgres_is_refused_only_where_the_bundle_would_create_it(tmp_path: Path, lakebase: str) -> None:
    """Every Lakebase branch has a built-in databricks_postgres database: a new project's bundle cannot create one
    of that name. An existing project or instance may be pointed at it."""
    result = render_cli(tmp_path / "out", f"lakebase={lakebase}", "database_name=databricks_postgres")
    if lakebase == "new-autoscaling":
        assert result.returncode != 0
        assert 'database_name="databricks_postgres", lakebase="new-autoscaling" is not supported' in result.stderr
        assert "Valid instead: another database_name" in result.stderr, result.stderr
        assert not any((tmp_path / "out").iterdir())
    else:
        assert result.returncode == 0, result.stderr


# Every free-text question (not a choice, not yes/no, not private): the hostile answers below go to each.
FREE_TEXT = free_text_questions()
HOSTILE = {
    "slash": "a/b",
    "dot-dot": "../up",
    "backslash": "a\\b",
    "command substitution": "$(touch PWNED)",
    "backticks": "`touch PWNED`",
    "shell separator": "x; touch PWNED #",
    "python triple quote": "x'''); __import__('os').system('touch PWNED') #",
    "python double triple quote": 'x"""); __import__("os").system("touch PWNED") #',
    "empty": "",
    "300 characters": "x" * 300,
}
CASES = [(field, why) for field in FREE_TEXT for why in HOSTILE]


def test_every_free_text_question_is_covered() -> None:
    assert set(FREE_TEXT) == {
        "project_name",
        "project_slug",
        "app_name",
        "description",
        "lakebase_name",
        "database_name",
        "schema_name",
        "pool_max_size",
        "max_instances",
    }


def _refused_cleanly(result_stderr: str, field: str, out: Path, cwd: Path) -> None:
    assert f"ERROR: {field}=" in result_stderr and "for example" in result_stderr, result_stderr
    assert not out.exists() or not any(out.iterdir()), f"a refused generation left {list(out.rglob('*'))}"
    assert not any(cwd.iterdir()), "a refused generation wrote into the working directory"


def _inert_and_valid(project: Path, field: str, value: str) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]{0,39}", project.name)
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert answers[field] == value
    yaml.safe_load((project / "databricks.yml").read_text())
    yaml.safe_load((project / "app" / "app.yaml").read_text())
    tomllib.loads((project / "pyproject.toml").read_text())
    for source in project.rglob("*.py"):
        compile(source.read_text(), str(source), "exec")


@pytest.mark.parametrize("field", FREE_TEXT)
def test_hostile_answers_are_refused_cleanly_or_stay_inert(
    tmp_path: Path, field: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused: the hook's message, nothing on disk. Accepted: valid files, the value kept as plain text."""
    outcomes = {}
    for why, value in HOSTILE.items():
        cwd, out = tmp_path / why / "cwd", tmp_path / why / "out"
        cwd.mkdir(parents=True)
        monkeypatch.chdir(cwd)
        try:
            project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=str(out), extra_context={field: value}))
        except FailedHookException:
            _refused_cleanly(capfd.readouterr().err, field, out, cwd)
            outcomes[why] = "refused"
        else:
            _inert_and_valid(project, field, value)
            outcomes[why] = "accepted"
        assert not list(tmp_path.rglob("PWNED")), f"{why}: an answer ran as a command or as code"
    print(field, outcomes)
    if field != "description":  # identifiers, names and numbers take none of these
        assert set(outcomes.values()) == {"refused"}, outcomes


@pytest.mark.parametrize(
    ("field", "why"), [("project_name", "empty"), ("project_name", "300 characters"), ("project_slug", "slash")]
)
def test_command_line_refusal_ends_with_the_hooks_message_not_a_traceback(tmp_path: Path, field: str, why: str) -> None:
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(ROOT), "--no-input", "-o", str(out), f"{field}={HOSTILE[why]}"],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        cwd=cwd,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    _refused_cleanly(result.stderr, field, out, cwd)


SLUG_RULE = r"[a-z][a-z0-9_]{0,39}"  # hooks/pre_gen_project.py RULES["project_slug"]


@pytest.mark.parametrize(
    "slug",
    ["a", "a__b", "a1_", "z" * 40, "z" * 41, "", "A", "1a", "_a", "a-b", "a.b", "..", "a/b", "a b", "é", "a\nb"],
)
def test_directory_name_is_the_slug_exactly_when_the_hook_accepts_it(slug: str) -> None:
    """cookiecutter makes the project directory before the hook runs: only a valid slug may name it."""
    hook_rules = (ROOT / "hooks" / "pre_gen_project.py").read_text()
    assert f'r"{SLUG_RULE}"' in hook_rules, "the hook's slug rule changed: update SLUG_RULE and __project_dir"
    env = StrictEnvironment(context={"cookiecutter": CONFIG})
    directory = env.from_string(CONFIG["__project_dir"]).render(cookiecutter={"project_slug": slug})
    if re.fullmatch(SLUG_RULE, slug):
        assert directory == slug
    else:
        assert re.fullmatch(r"refused-[a-z]{12}", directory), directory


def _interactive(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    """Answer cookiecutter's real prompts on standard input, one line per question, as a person types them."""
    return run_cookiecutter(tmp_path, "-o", str(tmp_path / "out"), stdin="".join(line + "\n" for line in lines))


QUESTIONS = [key for key, value in CONFIG.items() if not key.startswith("_")]


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """What the prompts printed, in one line (rich wraps them at the terminal's width)."""
    return " ".join(result.stdout.split())


def test_pressing_enter_everywhere_renders_what_each_prompt_shows(tmp_path: Path) -> None:
    result = _interactive(tmp_path, [""] * len(QUESTIONS))
    assert result.returncode == 0, result.stdout + result.stderr
    prompts, message = _said(result).split(" Created ", 1)
    assert f"[{len(QUESTIONS)}/{len(QUESTIONS)}]" in prompts  # every question was asked
    (project,) = (tmp_path / "out").iterdir()
    answers = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    for question in QUESTIONS:  # the default in parentheses, or the choice numbered 1, is what was rendered
        number = QUESTIONS.index(question) + 1
        asked = prompts.split(f"[{number}/{len(QUESTIONS)}] ", 1)[1].split(f"[{number + 1}/", 1)[0]
        if isinstance(CONFIG[question], list):
            label = CONFIG["__prompts__"][question][answers[question]]
            assert f"1 - {label}" in asked and asked.rstrip().endswith("(1):"), asked
        else:
            assert asked.rstrip().endswith(f"({answers[question]}):"), asked
    assert answers["lakebase"] == "new-autoscaling" and answers["database_name"] == "lakebase_app"
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    assert bundle["variables"]["database_name"]["default"] == "lakebase_app"
    assert 'APP_DATABASE = "app", "app_owner", "lakebase_app"' in (project / "local" / "run.py").read_text()
    assert message.startswith("out/lakebase_app (streamlit, psycopg3, a new Lakebase Autoscaling project).")
    assert "Next: cd out/lakebase_app && ./run-local.sh" in message and "(deploying creates it)" in message


def test_answers_recorded_before_the_lakebase_choice_are_refused_with_the_new_name(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A replay file from before: `lakebase=provisioned` with `create_database`, and none of the derived values."""
    recorded = json.loads((render(tmp_path / "first") / ".cookiecutter.json").read_text())["cookiecutter"]
    old = {key: value for key, value in recorded.items() if key not in ("__flavour", "__create_database")}
    replay = tmp_path / "old.json"
    replay.write_text(json.dumps({"cookiecutter": {**old, "lakebase": "provisioned", "create_database": False}}))
    out = tmp_path / "out"
    with pytest.raises(FailedHookException):
        cookiecutter(str(ROOT), replay=str(replay), output_dir=str(out))
    error = capfd.readouterr().err
    assert "ERROR: lakebase='provisioned' is invalid" in error and "is 'existing-provisioned'" in error, error
    assert not any(out.iterdir())


# What each `lakebase` choice renders: the typed number, the app resource, what dev declares, the message's words.
LAKEBASE_CHOICES = {
    "new-autoscaling": ("", "postgres", True, "a new Lakebase Autoscaling project"),
    "existing-autoscaling": ("2", "postgres", False, "an existing Lakebase Autoscaling project"),
    "existing-provisioned": ("3", "database", False, "an existing Lakebase Provisioned instance"),
}


@pytest.mark.parametrize("lakebase", LAKEBASE_CHOICES)
def test_each_lakebase_choice_is_one_answer_at_the_prompts(tmp_path: Path, lakebase: str) -> None:
    """One question, three setups, none refused: the number typed is the setup rendered, and the message after
    rendering names it and the next command."""
    typed, resource, creates, words = LAKEBASE_CHOICES[lakebase]
    answers = {"project_name": "Team Feedback", "lakebase": typed}
    result = _interactive(tmp_path, [answers.get(question, "") for question in QUESTIONS])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr
    said = _said(result)
    for number, label in enumerate(CONFIG["__prompts__"]["lakebase"][choice] for choice in CONFIG["lakebase"]):
        assert f"{number + 1} - {label}" in said, said
    assert "create_database" not in said and "flavour" not in said.lower()
    project = tmp_path / "out" / "team_feedback"
    rendered = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]
    assert rendered["lakebase"] == lakebase and rendered["database_name"] == "team_feedback"
    bundle = yaml.safe_load((project / "databricks.yml").read_text())
    (app,) = bundle["resources"]["apps"].values()
    assert [r["name"] for r in app["resources"]] == [resource], app["resources"]
    assert ("postgres_projects" in bundle["targets"]["dev"].get("resources", {})) == creates
    assert (project / "scripts" / "previews.py").exists() == (resource == "postgres")
    assert f"Created out/team_feedback (streamlit, psycopg3, {words})." in said
    assert "Next: cd out/team_feedback && ./run-local.sh" in said
