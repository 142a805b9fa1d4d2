"""What the template offers, read from cookiecutter.json, and ways to render it."""

import itertools
import json
import os
import subprocess
import sys
import tempfile
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


def free_text_questions() -> list[str]:
    """Every question answered in words or numbers (not a choice, not yes/no, not private)."""
    return [key for key, value in CONFIG.items() if not key.startswith("_") and isinstance(value, str)]


def isolated_config(where: Path) -> Path:
    """A cookiecutter user config whose replay and clone directories are under `where`, not in ~."""
    where.mkdir(parents=True, exist_ok=True)
    config = where / "config.yaml"
    config.write_text(json.dumps({"replay_dir": str(where / "replay"), "cookiecutters_dir": str(where / "clones")}))
    return config


def run_cookiecutter(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real `cookiecutter` command on this template, run in `cwd` with a user config of its own (in a
    temporary directory, removed after), prompting unless `--no-input` is among `args`."""
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, COOKIECUTTER_CONFIG=str(isolated_config(Path(home))))
        return subprocess.run(
            [sys.executable, "-m", "cookiecutter", str(ROOT), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            env=env,
            cwd=cwd,
        )


def render_cli(output_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Render through the real command line, as a user does."""
    for arg in args:
        key = arg.split("=", 1)[0]
        assert key in CONFIG, f"{key} is not a question of cookiecutter.json"
    return run_cookiecutter(cwd or Path.cwd(), "--no-input", "-o", str(output_dir), *args)
