"""Versioned migrations in rendered apps: existing databases upgrade in place, a failed migration changes nothing
and stops the app from serving, and the schema walkthrough of the rendered README works as written."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

from tests.appenv import app_python, password_role_env
from tests.template import ROOT, render

# The last template version without migrations: its apps created the schema with a bootstrap at start-up.
PREVIOUS = "7c86458"
DRIVERS = ["psycopg3", "psycopg2", "asyncpg", "sqlalchemy"]
FRAMEWORK = {"asyncpg": "fastapi"}  # asyncpg needs an async framework; flask runs the rest


@pytest.fixture(scope="module")
def previous_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as it was at PREVIOUS, from git (as a user who rendered it then had it)."""
    where = tmp_path_factory.mktemp("previous-template")
    archive = subprocess.run(["git", "archive", PREVIOUS], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    return where


def run_in_app(root: Path, env: dict[str, str], code: str, is_async: bool) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (awaited for asyncpg) inside app/ with the app environment; ``db`` is an opened Database."""
    body = "\n".join(f"        {line}" for line in code.strip().splitlines())
    if is_async:
        script = (
            "import asyncio\nfrom database import items, open_database\n"
            f"async def main():\n    db = await open_database()\n    try:\n{body}\n    finally:\n"
            "        await db.close()\nasyncio.run(main())\n"
        )
    else:
        script = (
            "from database import items, open_database\n"
            f"def main():\n    db = open_database()\n    try:\n{body}\n    finally:\n        db.close()\nmain()\n"
        )
    return subprocess.run(
        [str(app_python()), "-c", script], cwd=root / "app", env=env, capture_output=True, text=True, timeout=120
    )


def query(pg_server: Any, dbname: str, sql: str) -> list[tuple]:
    with pg_server.connect_superuser(dbname) as conn:
        return [tuple(row) for row in conn.execute(sql)]


@pytest.mark.parametrize("driver", DRIVERS)
def test_database_of_the_previous_template_upgrades_in_place(
    driver: str, tmp_path: Path, previous_template: Path, pg_server: Any
) -> None:
    answers = {"framework": FRAMEWORK.get(driver, "flask"), "driver": driver}
    is_async = driver == "asyncpg"
    await_ = "await " if is_async else ""
    old = Path(cookiecutter(str(previous_template), no_input=True, output_dir=str(tmp_path / "old"), extra_context=answers))
    assert not (old / "app" / "migrations").exists()
    _, env = password_role_env(pg_server, tmp_path)
    dbname = env["PGDATABASE"]
    made = run_in_app(
        old,
        env,
        f'{await_}items.create_item(db, "alice@example.com", "kept one")\n'
        f'{await_}items.create_item(db, "bob@example.com", "kept two")',
        is_async,
    )
    assert made.returncode == 0, made.stderr
    before = query(pg_server, dbname, "SELECT id, owner, title, done, created_at FROM app_data.items ORDER BY id")
    assert len(before) == 2

    new = render(tmp_path / "new", **answers)
    started = run_in_app(
        new, env, f'print([row["title"] for row in {await_}items.list_items(db, "alice@example.com")])', is_async
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "['kept one']"
    after = query(pg_server, dbname, "SELECT id, owner, title, done, created_at FROM app_data.items ORDER BY id")
    assert after == before
    assert query(pg_server, dbname, "SELECT version_num FROM app_data.alembic_version") == [("0001",)]
    current = subprocess.run(
        [str(app_python()), "-m", "database.migrate", "current"],
        cwd=new / "app",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert current.returncode == 0 and current.stdout.split() == ["0001", "(head)"], current.stdout + current.stderr
