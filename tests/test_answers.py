"""Bad answers are refused clearly, leave no directory, and injection attempts stay inert."""

import json
from pathlib import Path

import pytest
import yaml
from databricks.bundles.apps import App

from tests.template import render, render_cli

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


def test_booleans_are_booleans_and_defaults_render(tmp_path: Path) -> None:
    config = json.loads((Path(__file__).parent.parent / "cookiecutter.json").read_text())
    assert config["create_database"] is True
    root = render(tmp_path)
    assert root.name == "lakebase_app"
    assert "postgres_projects" in (root / "databricks.yml").read_text()
