"""Render every valid combination and check what a user gets, file by file."""

import compileall
import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.bundles.apps import App
from databricks.sdk.service import postgres as sdk_postgres
from packaging.requirements import Requirement
from yamllint import config as yamllint_config
from yamllint import linter

from tests.appenv import app_python, password_role_env
from tests.template import (
    ALL_DRIVER_PACKAGES,
    AXES,
    DRIVER_PACKAGES,
    SQLALCHEMY_EXTRA_DRIVERS,
    all_combinations,
    combo_id,
    refused,
    render,
    render_cli,
    valid_combinations,
)

VALID = valid_combinations()
JINJA_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")
GITHUB_EXPRESSION = re.compile(r"\$\{\{ [a-z_.A-Z]+ \}\}")  # ${{ secrets.X }} in the Actions workflow
VAR_USE = re.compile(r"\$\{var\.([A-Za-z0-9_]+)\}")


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.fixture(params=VALID, ids=[combo_id(c) for c in VALID])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    combo = request.param
    return combo, render(tmp_path, **combo)


def test_matrix_is_the_product_of_the_choices_minus_the_declared_refusals(tmp_path: Path) -> None:
    rendered, refused_here = [], []
    for combo in all_combinations():
        out = tmp_path / combo_id(combo)
        result = render_cli(
            out, *(f"{k}={'yes' if v is True else 'no' if v is False else v}" for k, v in combo.items())
        )
        if result.returncode == 0:
            rendered.append(combo)
        else:
            refused_here.append(combo)
            assert not out.exists() or not any(out.iterdir()), f"refused {combo} left files behind"
            assert "is not supported" in result.stderr and "Valid instead" in result.stderr, result.stderr
    assert rendered == [c for c in all_combinations() if not refused(c)]
    assert refused_here == [c for c in all_combinations() if refused(c)]
    assert len(rendered) + len(refused_here) == len(all_combinations()) == 80
    assert set(AXES) == {"framework", "driver", "lakebase", "create_database"}


def test_rendered_files_are_fully_rendered_and_lint_clean(project: tuple[dict[str, Any], Path]) -> None:
    combo, root = project
    for path in root.rglob("*"):
        if path.is_file():
            text = GITHUB_EXPRESSION.sub("", path.read_text())
            assert not JINJA_LEFTOVER.search(text), f"unrendered Jinja in {path.relative_to(root)}"
    assert not (root / "_variants").exists()
    assert (root / "app" / "static").exists() == (combo["framework"] in ("flask", "fastapi"))
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run([*ruff, "check", "--no-cache", "."], cwd=root, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([*ruff, "format", "--check", "--no-cache", "."], cwd=root, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    assert compileall.compile_dir(str(root), quiet=1, force=True)
    lint_config = yamllint_config.YamlLintConfig(file=str(root / ".yamllint.yaml"))
    for name in ("databricks.yml", "app/app.yaml", ".yamllint.yaml", ".github/workflows/ci.yml"):
        problems = list(linter.run((root / name).read_text(), lint_config))
        assert not problems, f"{name}: {[str(p) for p in problems]}"


def test_bundle_resources_load_through_the_bundle_models(project: tuple[dict[str, Any], Path]) -> None:
    combo, root = project
    bundle = yaml.safe_load((root / "databricks.yml").read_text())
    text = (root / "databricks.yml").read_text()
    assert set(VAR_USE.findall(text)) <= set(bundle["variables"]), "a ${var.x} is used but not defined"
    assert bundle["targets"]["dev"]["mode"] == "development" and bundle["targets"]["dev"]["default"] is True
    assert bundle["targets"]["prod"]["mode"] == "production"
    names = {bundle["targets"][t]["variables"]["app_name"] for t in ("dev", "prod")}
    assert len(names) == 2 and all(re.fullmatch(r"[a-z][a-z0-9-]{1,29}", n) for n in names)

    (app_key, app_dict), *others = bundle["resources"]["apps"].items()
    assert not others
    app = App.from_dict(app_dict)  # raises on unknown fields and bad enum values
    assert app.compute_max_instances is None  # one instance unless asked for more
    assert app.source_code_path == "./app" and (root / "app").is_dir()
    (resource,) = app.resources
    if combo["lakebase"] == "autoscaling":
        assert resource.postgres is not None and resource.database is None
        assert resource.postgres.permission.value == "CAN_CONNECT_AND_CREATE"
        assert resource.postgres.database.startswith(resource.postgres.branch + "/databases/")
    else:
        assert resource.database is not None and resource.postgres is None
        assert resource.database.permission.value == "CAN_CONNECT_AND_CREATE"

    created = {k: v for k, v in bundle["resources"].items() if k != "apps"}
    if combo["create_database"]:
        # databricks-bundles has no models for postgres_* yet: check the fields against the SDK's API types.
        assert set(created) == {"postgres_projects", "postgres_databases"}
        (project_res,) = created["postgres_projects"].values()
        assert set(project_res) <= field_names(sdk_postgres.ProjectSpec) | {"project_id"}
        assert set(project_res["default_endpoint_settings"]) <= field_names(sdk_postgres.ProjectDefaultEndpointSettings)
        (database_res,) = created["postgres_databases"].values()
        assert set(database_res) <= field_names(sdk_postgres.DatabaseDatabaseSpec) | {"parent", "database_id"}
        assert resource.postgres.database == f"{database_res['parent']}/databases/{database_res['database_id']}"
    else:
        assert created == {}


def test_app_yaml_runs_the_framework_and_reads_the_declared_resource(project: tuple[dict[str, Any], Path]) -> None:
    combo, root = project
    bundle = yaml.safe_load((root / "databricks.yml").read_text())
    declared = {r["name"] for app in bundle["resources"]["apps"].values() for r in app["resources"]}
    app_yaml = yaml.safe_load((root / "app" / "app.yaml").read_text())
    command = app_yaml["command"]
    assert isinstance(command, list) and any("$DATABRICKS_APP_PORT" in part for part in command)
    assert any("0.0.0.0" in part for part in command)
    expected_runner = {"streamlit": "streamlit", "dash": "gunicorn", "flask": "gunicorn"}.get(
        combo["framework"], "uvicorn"
    )
    assert command[0] == expected_runner
    value_from = [e["valueFrom"] for e in app_yaml["env"] if "valueFrom" in e]
    assert value_from and set(value_from) <= declared
    assert {"autoscaling": "postgres", "provisioned": "database"}[combo["lakebase"]] in value_from
    assert not any(e["name"] == "PGPASSWORD" for e in app_yaml["env"])


def test_requirements_name_exactly_the_chosen_driver(project: tuple[dict[str, Any], Path]) -> None:
    combo, root = project
    lines = [ln for ln in (root / "app" / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    requirements = [Requirement(ln) for ln in lines]
    names = {r.name.lower() for r in requirements}
    drivers = [r.name.lower() for r in requirements if r.name.lower() in ALL_DRIVER_PACKAGES] + [
        SQLALCHEMY_EXTRA_DRIVERS[extra] for r in requirements for extra in r.extras if extra.startswith("postgresql")
    ]
    assert drivers == [DRIVER_PACKAGES[combo["driver"]]], "exactly one PostgreSQL driver"
    assert {"alembic", "sqlalchemy"} <= names  # migrations: Alembic over SQLAlchemy's dialect for that driver
    assert "databricks-sdk" in names
    assert all(re.search(r">=[0-9.]+,<[0-9.]+$", ln) for ln in lines), "every requirement is pinned to a range"
    sdk_floor = next(ln for ln in lines if ln.startswith("databricks-sdk")).split(">=")[1].split(",")[0]
    assert tuple(int(p) for p in sdk_floor.split(".")[:2]) >= (0, 89), "too old for w.postgres"


def test_app_modules_import_without_a_database(project: tuple[dict[str, Any], Path]) -> None:
    combo, root = project
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root)}
    result = subprocess.run(
        [str(app_python()), str(Path(__file__).parent / "check_rendered_app.py"), str(root), combo["framework"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr


def test_project_own_tests_pass_against_postgres(project: tuple[dict[str, Any], Path], pg_server: Any) -> None:
    combo, root = project
    _, env = password_role_env(pg_server, root)
    result = subprocess.run(
        [str(app_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    expected = 7 + 3 + (6 if combo["driver"] == "asyncpg" else 0)  # items + credentials, identity, SQL parameters
    assert re.search(rf"\b{expected} passed\b", result.stdout) and "skipped" not in result.stdout, result.stdout
