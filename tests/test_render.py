"""Render every valid combination and check what a user gets, file by file."""

import compileall
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from yamllint import config as yamllint_config
from yamllint import linter

from tests.support import deployer
from tests.support.appenv import REQUIREMENTS as APP_ENV
from tests.support.appenv import app_python, password_role_env
from tests.support.template import (
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
from tests.support.waiting import HANG_GUARD

VALID = valid_combinations()
JINJA_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")
GITHUB_EXPRESSION = re.compile(
    r"\$\{\{ [\w.()\-]+ \}\}"
)  # ${{ secrets.X }}, ${{ fromJSON(needs.x.outputs.y) }} in workflows
CHECK_RENDERED_APP = Path(__file__).parent / "support" / "check_rendered_app.py"
VAR_USE = re.compile(r"\$\{var\.([A-Za-z0-9_]+)\}")


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
    assert len(rendered) + len(refused_here) == len(all_combinations()) == 60 and len(rendered) == 51
    assert set(AXES) == {"framework", "driver", "lakebase"}


def test_rendered_files_are_fully_rendered_and_lint_clean(project: tuple[dict[str, Any], Path]) -> None:
    combo, root = project
    for path in root.rglob("*"):
        if path.is_file():
            text = GITHUB_EXPRESSION.sub("", path.read_text())
            assert not JINJA_LEFTOVER.search(text), f"unrendered Jinja in {path.relative_to(root)}"
    assert not (root / "_variants").exists()
    json_api = combo["framework"] in ("flask", "fastapi")  # the page over the JSON API, and its HTTP shape
    assert (root / "app" / "static" / "index.html").exists() == json_api
    assert (root / "app" / "json_api.py").exists() == json_api
    styled = combo["framework"] != "streamlit"  # Streamlit: no stylesheet, no header, its own origin flags
    assert (root / "app" / "static" / "style.css").exists() == (root / "app" / "security.py").exists() == styled
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run([*ruff, "check", "--no-cache", "."], cwd=root, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([*ruff, "format", "--check", "--no-cache", "."], cwd=root, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    assert compileall.compile_dir(str(root), quiet=1, force=True)
    lint_config = yamllint_config.YamlLintConfig(file=str(root / ".yamllint.yaml"))
    workflows = [str(p.relative_to(root)) for p in (root / ".github" / "workflows").glob("*.yml")]
    for name in ("databricks.yml", "app/app.yaml", ".yamllint.yaml", *workflows):
        problems = list(linter.run((root / name).read_text(), lint_config))
        assert not problems, f"{name}: {[str(p) for p in problems]}"


def test_bundle_variables_and_target_modes(project: tuple[dict[str, Any], Path]) -> None:
    """The file's shape; what the CLI resolves from it, per deployment, is tests/test_bundles.py's."""
    _, root = project
    text = (root / "databricks.yml").read_text()
    bundle = yaml.safe_load(text)
    assert set(VAR_USE.findall(text)) <= set(bundle["variables"]), "a ${var.x} is used but not defined"
    assert bundle["targets"]["dev"]["mode"] == "development" and bundle["targets"]["dev"]["default"] is True
    assert bundle["targets"]["prod"]["mode"] == "production"


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
    if expected_runner == "streamlit":  # https://docs.streamlit.io/develop/api-reference/configuration/config.toml
        assert "--browser.gatherUsageStats=false" in command, "Streamlit must not send usage statistics"
    value_from = [e["valueFrom"] for e in app_yaml["env"] if "valueFrom" in e]
    assert set(value_from) <= declared
    if combo["lakebase"] == "autoscaling":
        assert value_from == ["postgres"]  # the endpoint path credentials are minted for
    else:  # valueFrom: database yields the host, not an instance name: the app needs nothing from it
        assert value_from == [] and "LAKEBASE_INSTANCE" not in {e["name"] for e in app_yaml["env"]}
    assert not any(e["name"] == "PGPASSWORD" for e in app_yaml["env"])


# The lowest version of each package without a gap the app relies on being closed (README: Dependencies).
FLOORS = {
    "databricks-sdk": "0.89.0",  # w.postgres (Lakebase Autoscaling credentials)
    "fastapi": "0.132.0",  # refuses a JSON body without a JSON Content-Type (release notes 0.132.0, PR #14978)
}
APP_ENV_INPUT = APP_ENV.with_suffix(".in")  # the tests' pins; test_locks.py holds the locks to them
APP_ENV_REQUIREMENTS = [ln for ln in APP_ENV_INPUT.read_text().splitlines() if ln and not ln.startswith("#")]


def test_requirements_name_exactly_the_chosen_driver(project: tuple[dict[str, Any], Path]) -> None:
    combo, root = project
    lines = [ln for ln in (root / "app" / "requirements.in").read_text().splitlines() if ln and not ln.startswith("#")]
    requirements = [Requirement(ln) for ln in lines]
    names = {r.name.lower() for r in requirements}
    drivers = [r.name.lower() for r in requirements if r.name.lower() in ALL_DRIVER_PACKAGES] + [
        SQLALCHEMY_EXTRA_DRIVERS[extra] for r in requirements for extra in r.extras if extra.startswith("postgresql")
    ]
    assert drivers == [DRIVER_PACKAGES[combo["driver"]]], "exactly one PostgreSQL driver"
    assert {"alembic", "sqlalchemy"} <= names  # migrations: Alembic over SQLAlchemy's dialect for that driver
    assert "databricks-sdk" in names
    assert all(re.search(r"==[0-9.]+$", ln) for ln in lines), "every requirement is pinned exactly (README)"
    pinned = {r.name.lower(): Version(next(iter(r.specifier)).version) for r in requirements}
    for name, floor in FLOORS.items():
        assert name not in pinned or pinned[name] >= Version(floor), f"{name} {pinned[name]} is below {floor}"
    # the tests' one environment installs exactly these versions (tests/app-requirements.in, then its lock)
    tested = {r.name.lower(): r.specifier for r in map(Requirement, APP_ENV_REQUIREMENTS)}
    for r in requirements:
        assert tested.get(r.name.lower()) == r.specifier, f"{r}: tests/app-requirements.in pins {tested.get(r.name)}"


def test_app_modules_import_without_a_database(project: tuple[dict[str, Any], Path]) -> None:
    combo, root = project
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root)}
    result = subprocess.run(
        [str(app_python()), str(CHECK_RENDERED_APP), str(root), combo["framework"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr


def test_project_own_tests_pass_against_postgres(project: tuple[dict[str, Any], Path], pg_server: Any) -> None:
    combo, root = project
    role, env = password_role_env(pg_server, root)
    deployer.upgrade(root / "app", deployer.prepare(pg_server, env["PGDATABASE"]), role)  # as a deploy does first
    result = subprocess.run(
        [str(app_python()), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    expected = 10 + 7 + 3 + (6 if combo["driver"] == "asyncpg" else 0)  # credentials, identity, items, SQL parameters
    assert re.search(rf"\b{expected} passed\b", result.stdout) and "skipped" not in result.stdout, result.stdout
