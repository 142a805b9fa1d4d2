"""What the template offers, read from cookiecutter.json, and ways to render it."""

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

from tests.support.waiting import HANG_GUARD

ROOT = Path(__file__).resolve().parents[2]
CONFIG: dict[str, Any] = json.loads((ROOT / "cookiecutter.json").read_text())
REFUSALS: list[dict[str, Any]] = CONFIG["_refusals"]

# Every question whose answer is a choice (a list) or a yes/no (a bool): the matrix axes.
AXES: dict[str, list[Any]] = {
    key: (value if isinstance(value, list) else [True, False])
    for key, value in CONFIG.items()
    if not key.startswith("_") and (isinstance(value, list) or isinstance(value, bool))
}

# The PostgreSQL driver (DB-API package) each choice installs. SQLAlchemy and Alembic are not drivers: the
# sqlalchemy choice gets psycopg through SQLAlchemy's extra, and every choice runs Alembic over its driver.
DRIVER_PACKAGES = {
    "psycopg3": "psycopg",
    "psycopg2": "psycopg2-binary",
    "asyncpg": "asyncpg",
    "sqlalchemy": "psycopg",
}
ALL_DRIVER_PACKAGES = {"psycopg", "psycopg-binary", "psycopg2", "psycopg2-binary", "asyncpg", "pg8000"}
SQLALCHEMY_EXTRA_DRIVERS = {
    "postgresql-psycopg": "psycopg",
    "postgresql-psycopgbinary": "psycopg",
    "postgresql-psycopg2binary": "psycopg2-binary",
    "postgresql-asyncpg": "asyncpg",
    "postgresql-pg8000": "pg8000",
}


def all_combinations() -> list[dict[str, Any]]:
    return [dict(zip(AXES, values, strict=True)) for values in itertools.product(*AXES.values())]


def refused(combo: dict[str, Any]) -> bool:
    return any(all(combo[field] in allowed for field, allowed in rule["when"].items()) for rule in REFUSALS)


def valid_combinations() -> list[dict[str, Any]]:
    return [combo for combo in all_combinations() if not refused(combo)]


def combo_id(combo: dict[str, Any]) -> str:
    return "-".join(
        str(v).lower() if not isinstance(v, bool) else ("create" if v else "existing") for v in combo.values()
    )


def render(output_dir: Path, **answers: Any) -> Path:
    """Render in-process with --no-input; returns the project directory."""
    unknown = set(answers) - set(CONFIG)
    assert not unknown, f"not questions of cookiecutter.json (cookiecutter would ignore them): {unknown}"
    return Path(cookiecutter(str(ROOT), no_input=True, output_dir=str(output_dir), extra_context=answers))


def render_cli(output_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Render through the real command line, as a user does."""
    for arg in args:
        key = arg.split("=", 1)[0]
        assert key in CONFIG, f"{key} is not a question of cookiecutter.json"
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(ROOT), "--no-input", "-o", str(output_dir), *args],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
