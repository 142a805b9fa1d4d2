"""Versioned migrations in rendered apps: existing databases upgrade in place, a failed migration changes nothing
and stops the app from serving, and the schema walkthrough of the rendered README works as written."""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from cookiecutter.main import cookiecutter

from tests.support import apprunner
from tests.support.appenv import app_python, password_role_env
from tests.support.http_api import ALICE, BOB, HttpApi
from tests.support.in_app import run_with_database
from tests.support.migration_file import migration_file
from tests.support.ports import free_port
from tests.support.template import ROOT, render
from tests.support.waiting import HANG_GUARD

# Earlier template versions whose databases must upgrade in place, rows and owners kept: the last without
# migrations (its apps created the schema with a bootstrap at start-up), and the last before row-level security.
PREVIOUS = {"7c86458": "bootstrap", "f84ef24": "0001"}
DRIVERS = ["psycopg3", "psycopg2", "asyncpg", "sqlalchemy"]
FRAMEWORK = {"asyncpg": "fastapi"}  # asyncpg needs an async framework; flask runs the rest


@pytest.fixture(scope="module", params=list(PREVIOUS))
def previous_template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as it was at a PREVIOUS commit, from git (as a user who rendered it then had it)."""
    where = tmp_path_factory.mktemp(f"template-{request.param}")
    archive = subprocess.run(["git", "archive", request.param], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    return where


def run_in_app(root: Path, env: dict[str, str], code: str, is_async: bool) -> subprocess.CompletedProcess[str]:
    """Run ``code`` inside app/ with ``items`` and ``db``, an opened Database (tests/support/in_app.py)."""
    # the example feature: its own package now, inside database/ in the previous template
    feature = "import items" if (root / "app" / "items").is_dir() else "from database import items"
    return run_with_database(root / "app", env, code, is_async, feature)


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
    old = Path(
        cookiecutter(str(previous_template), no_input=True, output_dir=str(tmp_path / "old"), extra_context=answers)
    )
    had = sorted(p.name for p in (old / "app" / "migrations" / "versions").glob("*.py"))
    assert had == ([] if "7c86458" in previous_template.name else ["0001_bootstrap.py"])
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
        new,
        env,
        f'print([row["title"] for row in {await_}items.list_items(db, "alice@example.com")])\n'
        f'print([row["title"] for row in {await_}items.list_items(db, "bob@example.com")])',
        is_async,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.split("\n")[:2] == ["['kept one']", "['kept two']"]  # each owner still sees their row
    after = query(pg_server, dbname, "SELECT id, owner, title, done, created_at FROM app_data.items ORDER BY id")
    assert after == before
    assert query(pg_server, dbname, "SELECT version_num FROM app_data.alembic_version") == [("0002",)]
    current = subprocess.run(
        [str(app_python()), "-m", "database.migrate", "current"],
        cwd=new / "app",
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert current.returncode == 0 and current.stdout.split() == ["0002", "(head)"], current.stdout + current.stderr


# ---------------------------------------------------------------------------------------------- the README walkthrough
CODE_BLOCK = re.compile(r"^ *```(\w+)\n(.*?)^ *```", re.S | re.M)


def walkthrough(readme: Path) -> list[tuple[str, str]]:
    """The code blocks of the rendered README's "Change the schema" section, in order: (language, dedented text)."""
    section = readme.read_text().split("## Change the schema", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return [(lang, textwrap.dedent(body)) for lang, body in CODE_BLOCK.findall(section)]


def follow_walkthrough(project: Path, env: dict[str, str]) -> Path:
    """Do what each step of the README says, in app/, against the database in ``env``; returns the new migration."""
    app = project / "app"
    versions = app / "migrations" / "versions"
    models = app / "items" / "models.py"
    for lang, body in walkthrough(project / "README.md"):
        if lang == "bash":
            for line in body.strip().splitlines():
                args = shlex.split(line)
                assert args[0] == "../.venv/bin/python", line
                done = subprocess.run(
                    [str(app_python()), *args[1:]], cwd=app, env=env, capture_output=True, text=True, timeout=HANG_GUARD
                )
                assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        elif body.startswith("items = Table("):  # the model's new table definition, and the import the step names
            text = models.read_text().replace("    Table,\n", "    SmallInteger,\n    Table,\n")
            start = text.index("items = Table(")
            end = text.index("\n)\n", start) + 3
            models.write_text(text[:start] + body + text[end:])
        elif body.startswith("def upgrade"):  # the SQL that replaces the new file's empty upgrade()
            (migration,) = versions.glob("0003_*.py")
            text = migration.read_text()
            assert "def upgrade() -> None:\n    pass\n" in text, text
            migration.write_text(text.replace("def upgrade() -> None:\n    pass\n", body))
        else:  # a line for the end of upgrade()
            (migration,) = versions.glob("0003_*.py")
            migration.write_text(migration.read_text() + textwrap.indent(body, "    "))
    (migration,) = versions.glob("0003_*.py")
    return migration


WALKTHROUGH = [
    {"framework": "flask", "driver": "psycopg3"},  # gunicorn: 2 workers per instance, 4 processes racing
    {"framework": "fastapi", "driver": "asyncpg"},
    {"framework": "fastapi", "driver": "sqlalchemy"},  # model change + autogenerate
]


@pytest.mark.parametrize("answers", WALKTHROUGH, ids=lambda a: f"{a['framework']}-{a['driver']}")
def test_readme_schema_change_then_two_instances_start_at_once(
    answers: dict[str, str], tmp_path: Path, pg_server: Any, workspace_stub: Any, deployment: tuple[Any, str]
) -> None:
    before = render(tmp_path / "v1", **answers)
    client, prod = deployment  # production: the app as deployed today, holding rows

    def env_for(project: Path) -> dict[str, str]:
        return apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", prod)

    with apprunner.running_app(before, env_for(before), tmp_path / "v1.log") as app:
        api = HttpApi(app.url)
        ids = [api.create(ALICE, "open item"), api.create(ALICE, "finished item"), api.create(BOB, "bob's")]
        assert api.update(ALICE, ids[1], "finished item", True)
    rows = query(pg_server, prod, "SELECT id, owner, title, done FROM app_data.items ORDER BY id")

    # A developer follows the README against their own database.
    after = tmp_path / "v2" / before.name
    shutil.copytree(before, after)
    _, dev_env = password_role_env(pg_server, tmp_path)
    migration = follow_walkthrough(after, dev_env)
    if answers["driver"] == "sqlalchemy":  # autogenerate wrote exactly the model's change
        operations = re.findall(r"op\.(\w+)\(", migration.read_text())
        assert operations == ["add_column", "create_index", "execute"], migration.read_text()
    assert query(pg_server, dev_env["PGDATABASE"], "SELECT version_num FROM app_data.alembic_version") == [("0003",)]
    check = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(migration)], capture_output=True)
    assert check.returncode == 0, check.stdout
    # Instrument the migration (test only): a table (with the row security every table needs) that records each
    # run and how many rows the README's backfill changed in it.
    backfill = 'op.execute("UPDATE items SET priority = 1 WHERE NOT done")'
    assert migration.read_text().count(backfill) == 1
    migration.write_text(
        migration.read_text().replace(
            backfill,
            'changed = op.get_bind().execute(sa.text("UPDATE items SET priority = 1 WHERE NOT done")).rowcount',
        )
        + '    op.execute("CREATE TABLE IF NOT EXISTS runs_0003 (at timestamptz DEFAULT now(), changed int)")\n'
        '    op.execute("ALTER TABLE runs_0003 ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")\n'
        '    op.execute("CREATE POLICY runs_0003_migrations ON runs_0003 USING ((SELECT migrating()))")\n'
        '    op.execute(sa.text("INSERT INTO runs_0003 (changed) VALUES (:changed)").bindparams(changed=changed))\n'
    )
    if "import sqlalchemy as sa" not in migration.read_text():
        migration.write_text(
            migration.read_text().replace(
                "from alembic import op\n", "import sqlalchemy as sa\nfrom alembic import op\n"
            )
        )

    # Ship it: two instances of the new version start at the same moment against production.
    apps = [apprunner.start(after, env_for(after), tmp_path / f"v2-{n}.log") for n in range(2)]
    try:
        for app in apps:
            apprunner.wait_ready(app)
        status = apprunner.healthz_at_once(apps)
        assert status == {0: 200, 1: 200}, (status, [a.log_text()[-3000:] for a in apps])
        for app in apps:
            assert [t for _, t, _ in HttpApi(app.url).list(ALICE)] == ["open item", "finished item"]
    finally:
        for app in apps:
            apprunner.stop(app)
    # Ran once, and its backfill changed the two open items of two users (not none: it sees every user's rows).
    assert query(pg_server, prod, "SELECT changed FROM app_data.runs_0003") == [(2,)]
    assert query(pg_server, prod, "SELECT version_num FROM app_data.alembic_version") == [("0003",)]
    assert query(pg_server, prod, "SELECT id, owner, title, done FROM app_data.items ORDER BY id") == rows
    backfilled = query(pg_server, prod, "SELECT title, priority FROM app_data.items ORDER BY id")
    assert backfilled == [("open item", 1), ("finished item", 0), ("bob's", 1)]
    assert query(pg_server, prod, "SELECT indexname FROM pg_indexes WHERE indexname = 'items_owner_priority_idx'")

    # An old instance (rolling deploy) finds the newer database: it says so and keeps serving.
    with apprunner.running_app(before, env_for(before), tmp_path / "v1-again.log") as old:
        assert requests.get(f"{old.url}/healthz", timeout=HANG_GUARD).status_code == 200, old.log_text()[-3000:]
        assert len(HttpApi(old.url).list(ALICE)) == 2
        assert "newer than this code" in old.log_text() and "0003" in old.log_text()


# ---------------------------------------------------------------------------------------------- a broken migration
@contextmanager
def failed_release(
    project: Path, env: dict[str, str], log: Path, filename: str, text: str
) -> Iterator[tuple[apprunner.App, requests.Response]]:
    """The next release adds migration `filename`, which fails: the app runs, and /healthz answers 503."""
    (project / "app" / "migrations" / "versions" / filename).write_text(text)
    env["DATABRICKS_APP_PORT"] = str(free_port())
    with apprunner.running_app(project, env, log) as app:
        health = requests.get(f"{app.url}/healthz", timeout=HANG_GUARD)
        assert health.status_code == 503, health.text
        yield app, health


BROKEN = migration_file(
    "0003",
    "Add a note, then backfill it from a column that does not exist.",
    ["ALTER TABLE items ADD COLUMN note text", "UPDATE items SET note = no_such_column"],
)


@pytest.mark.parametrize("answers", [{"framework": "fastapi", "driver": "psycopg2"}], ids=["fastapi-psycopg2"])
def test_broken_migration_changes_nothing_and_the_app_does_not_serve(
    answers: dict[str, str], tmp_path: Path, pg_server: Any, workspace_stub: Any, deployment: tuple[Any, str]
) -> None:
    project = render(tmp_path, **answers)
    client, dbname = deployment
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    with apprunner.running_app(project, env, tmp_path / "v1.log") as app:
        HttpApi(app.url).create(ALICE, "before the broken release")
    columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' ORDER BY column_name"
    schema_before = query(pg_server, dbname, columns)

    with failed_release(project, env, tmp_path / "v2.log", "0003_broken.py", BROKEN) as (app, health):
        reason = health.json()["database"]
        assert "0003_broken.py" in reason and "no_such_column" not in reason, reason  # the log says why
        refused = requests.get(f"{app.url}/api/items", headers={"X-Forwarded-Email": ALICE}, timeout=HANG_GUARD)
        assert refused.status_code == 500  # no request is served against the half-migrated schema
        assert requests.get(f"{app.url}/healthz", timeout=HANG_GUARD).status_code == 503  # and it stays so
        log = app.log_text()
    assert "0003_broken.py" in log and "no_such_column" in log and "rolled back" in log, log[-3000:]
    assert "SQLSTATE 42703" in log, log[-3000:]  # undefined_column
    assert query(pg_server, dbname, columns) == schema_before  # the ADD COLUMN was rolled back too
    assert query(pg_server, dbname, "SELECT version_num FROM app_data.alembic_version") == [("0002",)]
    assert query(pg_server, dbname, "SELECT title FROM app_data.items") == [("before the broken release",)]


def test_streamlit_remembers_a_failed_migration_instead_of_retrying_it_per_page(
    tmp_path: Path, workspace_stub: Any, deployment: tuple[Any, str]
) -> None:
    """Streamlit reaches the pool through database(), like every framework: the second page load is refused with
    the first load's failure, and the migration ran once (with st.cache_resource it ran again on every load)."""
    project = render(tmp_path, framework="streamlit", driver="psycopg3")
    (project / "app" / "migrations" / "versions" / "0003_broken.py").write_text(BROKEN)
    client, dbname = deployment
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    page = apprunner.driver("streamlit", tmp_path, env, project / "app", str(project / "app" / "main.py"))
    try:
        loads = [page.call("list", user=ALICE) for _ in range(2)]
    finally:
        page.close()
    for shown in loads:
        assert not shown["exceptions"] and len(shown["errors"]) == 1, loads
        assert "0003_broken.py" in shown["errors"][0] and "no_such_column" not in shown["errors"][0], loads
    assert page.log.read_text().count("SQLSTATE 42703") == 1, page.log.read_text()[-3000:]  # one attempt


UNIQUE_TITLES = migration_file(
    "0003",
    "Titles are unique from now on (but two users already share one).",
    ["CREATE UNIQUE INDEX items_title_unique ON items (title)"],
)


@pytest.mark.parametrize(
    "answers",
    [{"framework": "flask", "driver": "psycopg3"}, {"framework": "fastapi", "driver": "asyncpg"}],
    ids=["flask-psycopg3", "fastapi-asyncpg"],
)
def test_a_failed_migration_answers_with_its_name_and_no_row_data(
    answers: dict[str, str], tmp_path: Path, workspace_stub: Any, deployment: Any
) -> None:
    """PostgreSQL's DETAIL may quote the duplicated row (another user's title): /healthz names the migration only."""
    secret = "salary review for carol: 180k"
    project = render(tmp_path, **answers)
    client, dbname = deployment
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    with apprunner.running_app(project, env, tmp_path / "v1.log") as app:
        for user in (ALICE, BOB):
            HttpApi(app.url).create(user, secret)

    with failed_release(project, env, tmp_path / "v2.log", "0003_unique_titles.py", UNIQUE_TITLES) as (app, health):
        reason = health.json()["database"]
        assert "0003_unique_titles.py" in reason, reason
        for leak in ("180k", "carol", "DETAIL", "Key (title)", "duplicate"):
            assert leak not in health.text, health.text
        log = app.log_text()
    # the database's DETAIL goes to the log (under row-level security PostgreSQL leaves the key values out of it)
    assert "0003_unique_titles.py" in log and "SQLSTATE 23505" in log and "DETAIL:" in log, log[-3000:]


NOT_ADDITIVE = migration_file(
    "0003",
    "Rename a column: the previous release's queries would fail on the result.",
    ["ALTER TABLE items RENAME COLUMN title TO name"],
    additive=False,
)


def test_older_code_does_not_serve_after_a_migration_that_is_not_additive(tmp_path: Path, pg_server: Any) -> None:
    old = render(tmp_path / "v1", framework="flask", driver="psycopg3")
    new = tmp_path / "v2" / old.name
    shutil.copytree(old, new)
    (new / "app" / "migrations" / "versions" / "0003_rename.py").write_text(NOT_ADDITIVE)
    _, env = password_role_env(pg_server, tmp_path)
    assert run_in_app(old, env, 'items.create_item(db, "alice@example.com", "one")', False).returncode == 0
    assert run_in_app(new, env, "pass", False).returncode == 0
    assert query(pg_server, env["PGDATABASE"], "SELECT version_num FROM app_data.alembic_version") == [("0003",)]
    refused = run_in_app(old, env, "pass", False)
    assert refused.returncode != 0
    assert "MigrationFailed" in refused.stderr and "migration 0003 declared itself not additive" in refused.stderr
