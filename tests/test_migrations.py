"""Versioned migrations in rendered apps, run by the deployer before the code: existing databases (made by earlier
versions of the template, whose app owned its schema) move to the owner / app role split keeping every row and
owner; an app started before the migration answers 503 naming it and serves once it ran, without a restart; a
failed migration changes nothing; `sql` prints a migration's DDL; and the schema walkthrough of the rendered
docs/change-the-schema.md works as written, through to the new column in GET /api/items."""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from cookiecutter.main import cookiecutter

from tests.harness.ports import free_port
from tests.support import apprunner, deployer
from tests.support.appenv import app_python, password_role_env
from tests.support.http_api import ALICE, BOB, HttpApi
from tests.support.in_app import run_with_database
from tests.support.migration_file import migration_file
from tests.support.template import ROOT, render
from tests.support.waiting import HANG_GUARD

# Earlier template versions whose databases must upgrade in place, rows and owners kept: the last without
# migrations (its apps created the schema with a bootstrap at start-up), the last before row-level security, and
# the last whose app migrated itself at start-up as the role it serves with (so that role owns everything).
PREVIOUS = {"7c86458": "bootstrap", "f84ef24": "0001", "a4a5eca": "0002"}
DRIVERS = ["psycopg3", "psycopg2", "asyncpg", "sqlalchemy"]
FRAMEWORK = {"asyncpg": "fastapi"}  # asyncpg needs an async framework; flask runs the rest
STATIC = "/static/style.css"  # served without the database: the app is up, whatever the database says


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
    assert len(had) == {"bootstrap": 0, "0001": 1, "0002": 2}[PREVIOUS[previous_template.name.split("-")[1][:7]]]
    role, env = password_role_env(pg_server, tmp_path)  # the app's role: the service principal it always had
    dbname = env["PGDATABASE"]
    made = run_in_app(
        old,
        env,
        f'{await_}items.create_item(db, "alice@example.com", "kept one")\n'
        f'{await_}items.create_item(db, "bob@example.com", "kept two")',
        is_async,
    )
    assert made.returncode == 0, made.stderr
    items = "SELECT id, owner, title, done, created_at FROM app_data.items ORDER BY id"
    before = pg_server.query(items, dbname=dbname)
    assert len(before) == 2 and pg_server.query(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'items'", dbname=dbname
    )

    new = render(tmp_path / "new", **answers)
    found = deployer.prepare(pg_server, dbname)
    # The new code does not migrate: it answers that the database lacks what it needs.
    early = run_in_app(new, env, "pass", is_async)
    assert early.returncode != 0 and "NotMigrated" in early.stderr and "0003_owner_role.py" in early.stderr, (
        early.stderr
    )
    # The app's role owns the schema: the deployer may not take it over until it is a member of that role once.
    refused = deployer.run(new / "app", found, "upgrade", "--app-role", role)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f'GRANT "{role}" TO "{found.role}";' in refused.stderr and "Nothing was changed" in refused.stderr
    assert pg_server.query(items, dbname=dbname) == before

    # The one step, as README "Change the schema" says: membership once, upgrade, membership revoked.
    pg_server.query(f'GRANT "{role}" TO "{found.role}"')
    deployer.upgrade(new / "app", found, role)
    pg_server.query(f'REVOKE "{role}" FROM "{found.role}"')

    started = run_in_app(
        new,
        env,
        f'print([row["title"] for row in {await_}items.list_items(db, "alice@example.com")])\n'
        f'print([row["title"] for row in {await_}items.list_items(db, "bob@example.com")])',
        is_async,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.split("\n")[:2] == ["['kept one']", "['kept two']"]  # each owner still sees their row
    assert pg_server.query(items, dbname=dbname) == before
    assert pg_server.query("SELECT version_num FROM app_data.alembic_version", dbname=dbname) == [("0005",)]
    owners = "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'app_data'"
    assert pg_server.query(owners, dbname=dbname) == [(found.owner,)]
    assert pg_server.query(
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'app_data'", dbname=dbname
    ) == [(found.owner,)]
    functions = (
        "SELECT proname, proowner::regrole::text, proconfig FROM pg_proc WHERE pronamespace = 'app_data'::regnamespace "
        "ORDER BY proname"
    )
    pinned = ["search_path=pg_catalog, pg_temp"]
    assert pg_server.query(functions, dbname=dbname) == [
        ("app_user", found.owner, pinned),
        ("create_item", found.owner, pinned),
        ("delete_item", found.owner, pinned),
        ("first_time", found.owner, pinned),
        ("items_for", found.owner, pinned),
        ("update_item", found.owner, pinned),
    ]
    policies = "SELECT polname FROM pg_policy WHERE polrelid = 'app_data.items'::regclass"
    assert pg_server.query(policies, dbname=dbname) == [("items_owner",)]
    current = deployer.run(new / "app", found, "current")
    assert current.returncode == 0 and current.stdout.split() == ["0005", "(head)"], current.stdout + current.stderr


# ---------------------------------------------------------------------------------------------- the README walkthrough
CODE_BLOCK = re.compile(r"^ *```(\w+)\n(.*?)^ *```", re.S | re.M)


def walkthrough(page: Path) -> list[tuple[str, str]]:
    """The code blocks of the rendered docs/change-the-schema.md before "A new table", in order: (language, text)."""
    section = page.read_text().split("\n## ", 1)[0]
    return [(lang, textwrap.dedent(body)) for lang, body in CODE_BLOCK.findall(section)]


# A step's edit in words: "in `app/items/queries.py`, replace each `a` with `b` (once: ..." or "(4 times: ...".
REPLACE_EACH = re.compile(r"in `(app/[^`]+)`, replace each `([^`]+)` with\s+`([^`]+)`\s+\((once|\d+ times)")


def replacements(page: Path) -> list[tuple[str, str, str, int]]:
    """The edits docs/change-the-schema.md asks for in words, before "A new table": (file, old, new, how often)."""
    section = page.read_text().split("\n## ", 1)[0]
    found = [(f, a, b, 1 if n == "once" else int(n.split()[0])) for f, a, b, n in REPLACE_EACH.findall(section)]
    assert found, "the walkthrough names no edit of the queries"
    return found


def follow_walkthrough(project: Path, env: dict[str, str]) -> Path:
    """Do what each step of the README says, in app/, against the database in ``env``; returns the new migration."""
    app = project / "app"
    versions = app / "migrations" / "versions"
    models = app / "items" / "models.py"
    page = project / "docs" / "change-the-schema.md"
    for lang, body in walkthrough(page):
        if lang == "bash":
            for line in body.strip().splitlines():
                args = shlex.split(line)
                assert args[0] == "../.venv/bin/python", line
                done = subprocess.run(
                    [str(app_python()), *args[1:]], cwd=app, env=env, capture_output=True, text=True, timeout=HANG_GUARD
                )
                assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
                if args[-2:] == ["sql", "0005"]:  # what the step shows: the new migration's SQL and its flag
                    assert "0006_add_priority.py" in done.stdout and "priority" in done.stdout, done.stdout
                    assert "additive" in done.stdout and "not additive" not in done.stdout, done.stdout
        elif body.startswith("items = Table("):  # the model's new table definition, and the import the step names
            text = models.read_text().replace("    Table,\n", "    SmallInteger,\n    Table,\n")
            start = text.index("items = Table(")
            end = text.index("\n)\n", start) + 3
            models.write_text(text[:start] + body + text[end:])
        elif body.startswith("class Item("):  # FastAPI's response model, with the new field
            api = app / "items" / "api.py"
            text = api.read_text()
            start = text.index("class Item(")
            end = text.index("\n\n\n", start) + 1
            api.write_text(text[:start] + body + text[end:])
        elif body.startswith("def upgrade"):  # the SQL that replaces the new file's empty upgrade()
            (migration,) = versions.glob("0006_*.py")
            text = migration.read_text()
            assert "def upgrade() -> None:\n    pass\n" in text, text
            migration.write_text(text.replace("def upgrade() -> None:\n    pass\n", body))
        else:  # a line for the end of upgrade()
            (migration,) = versions.glob("0006_*.py")
            migration.write_text(migration.read_text() + textwrap.indent(body, "    "))
    for name, old, new, times in replacements(page):  # the queries name the new column
        path = project / name
        assert path.read_text().count(old) == times, (name, old, path.read_text())
        path.write_text(path.read_text().replace(old, new))
    (migration,) = versions.glob("0006_*.py")
    return migration


def developer_env(pg_server: Any, tmp_path: Path) -> dict[str, str]:
    """A developer's own database, with its owner and app roles, as the export line of ./run-local.sh names them."""
    role, env = password_role_env(pg_server, tmp_path)
    return {**deployer.prepare(pg_server, env["PGDATABASE"]).env, "DB_APP_ROLE": role}


def until_answering(app: apprunner.App, path: str) -> requests.Response:
    """The first HTTP answer on ``path`` (any status), once the app listens."""
    deadline = time.monotonic() + HANG_GUARD
    while True:
        try:
            return requests.get(f"{app.url}{path}", headers={"X-Forwarded-Email": ALICE}, timeout=HANG_GUARD)
        except requests.ConnectionError:
            assert app.proc.poll() is None and time.monotonic() < deadline, app.log_text()[-3000:]
            time.sleep(0.2)


WALKTHROUGH = [
    {"framework": "flask", "driver": "psycopg3"},  # gunicorn: 2 workers per instance, 4 processes
    {"framework": "fastapi", "driver": "asyncpg"},
    {"framework": "fastapi", "driver": "sqlalchemy"},  # model change + autogenerate
]


@pytest.mark.parametrize("answers", WALKTHROUGH, ids=lambda a: f"{a['framework']}-{a['driver']}")
def test_readme_schema_change_then_the_deployer_migrates_under_running_apps(
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
    rows = pg_server.query("SELECT id, owner, title, done FROM app_data.items ORDER BY id", dbname=prod)

    # A developer follows the README against their own database.
    after = tmp_path / "v2" / before.name
    shutil.copytree(before, after)
    dev_env = developer_env(pg_server, tmp_path)
    migration = follow_walkthrough(after, dev_env)
    if answers["driver"] == "sqlalchemy":  # autogenerate wrote exactly the model's change
        operations = re.findall(r"op\.(\w+)\(", migration.read_text())
        assert operations == ["add_column", "create_index", "execute"], migration.read_text()
    assert pg_server.query("SELECT version_num FROM app_data.alembic_version", dbname=dev_env["PGDATABASE"]) == [
        ("0006",)
    ]
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
        + '    op.execute("CREATE TABLE IF NOT EXISTS runs_0004 (at timestamptz DEFAULT now(), changed int)")\n'
        '    op.execute("ALTER TABLE runs_0004 ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")\n'
        '    op.execute("CREATE POLICY runs_0004_nobody ON runs_0004 USING (false)")\n'
        '    op.execute(sa.text("INSERT INTO runs_0004 (changed) VALUES (:changed)").bindparams(changed=changed))\n'
    )
    if "import sqlalchemy as sa" not in migration.read_text():
        migration.write_text(
            migration.read_text().replace(
                "from alembic import op\n", "import sqlalchemy as sa\nfrom alembic import op\n"
            )
        )

    # Ship it. Two instances of the new code start before the deployer migrated: they answer 503 naming the
    # migration, and neither changes the schema.
    apps = [apprunner.start(after, env_for(after), tmp_path / f"v2-{n}.log", migrate_first=False) for n in range(2)]
    try:
        for app in apps:
            health = until_answering(app, "/healthz")
            assert health.status_code == 503 and "0006_add_priority.py" in health.text, health.text
            refused = until_answering(app, "/api/items")
            assert refused.status_code == 503 and "0006_add_priority.py" in refused.text, refused.text
            assert refused.headers["Retry-After"] == "5"
        assert pg_server.query("SELECT version_num FROM app_data.alembic_version", dbname=prod) == [("0005",)]
        # Two deploys migrate at the same moment: the lock lets one apply it, the other finds nothing to do.
        prod_deployer = deployer.of(env_for(after))
        assert prod_deployer is not None
        runs = [
            subprocess.Popen(
                [str(app_python()), "-m", "database.migrate", "upgrade", "--app-role", client.role],
                cwd=after / "app",
                env=prod_deployer.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        for run in runs:
            out, _ = run.communicate(timeout=HANG_GUARD)
            assert run.returncode == 0, out
        # The same apps, not restarted, serve now.
        status = apprunner.healthz_at_once(apps)
        assert status == {0: 200, 1: 200}, (status, [a.log_text()[-3000:] for a in apps])
        for app in apps:  # the API answers the new column, filled in by the backfill
            listed = requests.get(f"{app.url}/api/items", headers={"X-Forwarded-Email": ALICE}, timeout=HANG_GUARD)
            assert listed.status_code == 200, listed.text
            answered = [(item["title"], item["priority"]) for item in listed.json()]
            assert answered == [("open item", 1), ("finished item", 0)], listed.text
    finally:
        for app in apps:
            apprunner.stop(app)
    # Ran once, and its backfill changed the two open items of two users (not none: it sees every user's rows).
    assert pg_server.query("SELECT changed FROM app_data.runs_0004", dbname=prod) == [(2,)]
    assert pg_server.query("SELECT version_num FROM app_data.alembic_version", dbname=prod) == [("0006",)]
    assert pg_server.query("SELECT id, owner, title, done FROM app_data.items ORDER BY id", dbname=prod) == rows
    backfilled = pg_server.query("SELECT title, priority FROM app_data.items ORDER BY id", dbname=prod)
    assert backfilled == [("open item", 1), ("finished item", 0), ("bob's", 1)]
    assert pg_server.query("SELECT indexname FROM pg_indexes WHERE indexname = 'items_owner_priority_idx'", dbname=prod)

    # An old instance (rolling deploy) finds the newer database: it says so and keeps serving.
    with apprunner.running_app(before, env_for(before), tmp_path / "v1-again.log", migrate_first=False) as old:
        assert requests.get(f"{old.url}/healthz", timeout=HANG_GUARD).status_code == 200, old.log_text()[-3000:]
        assert len(HttpApi(old.url).list(ALICE)) == 2
        assert "newer than this code" in old.log_text() and "0006" in old.log_text()


# ---------------------------------------------------------------------------------------------- a broken migration
@contextmanager
def released(project: Path, env: dict[str, str], log: Path, filename: str, text: str) -> Iterator[apprunner.App]:
    """The next release adds migration `filename`; its code runs, started before the deployer's migration."""
    (project / "app" / "migrations" / "versions" / filename).write_text(text)
    env["DATABRICKS_APP_PORT"] = str(free_port())
    with apprunner.running_app(project, env, log, ready_path=STATIC, migrate_first=False) as app:
        yield app


BROKEN = migration_file(
    "0006",
    "Add a note, then backfill it from a column that does not exist.",
    ["ALTER TABLE items ADD COLUMN note text", "UPDATE items SET note = no_such_column"],
)


@pytest.mark.parametrize("answers", [{"framework": "fastapi", "driver": "psycopg2"}], ids=["fastapi-psycopg2"])
def test_broken_migration_changes_nothing_and_the_new_code_does_not_serve(
    answers: dict[str, str], tmp_path: Path, pg_server: Any, workspace_stub: Any, deployment: tuple[Any, str]
) -> None:
    project = render(tmp_path, **answers)
    client, dbname = deployment
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    with apprunner.running_app(project, env, tmp_path / "v1.log") as app:
        HttpApi(app.url).create(ALICE, "before the broken release")
    columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' ORDER BY column_name"
    schema_before = pg_server.query(columns, dbname=dbname)

    with released(project, env, tmp_path / "v2.log", "0006_broken.py", BROKEN) as app:
        failed = deployer.run(project / "app", deployer.of(env), "upgrade", "--app-role", client.role)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        said = failed.stderr
        assert "0006_broken.py" in said and "no_such_column" in said and "rolled back" in said, said
        assert "SQLSTATE 42703" in said, said  # undefined_column
        health = requests.get(f"{app.url}/healthz", timeout=HANG_GUARD)
        assert health.status_code == 503 and "0006_broken.py" in health.json()["database"], health.text
        refused = requests.get(f"{app.url}/api/items", headers={"X-Forwarded-Email": ALICE}, timeout=HANG_GUARD)
        assert refused.status_code == 503 and "0006_broken.py" in refused.text, refused.text
        assert "no_such_column" not in health.text + refused.text
        assert requests.get(f"{app.url}/healthz", timeout=HANG_GUARD).status_code == 503  # and it stays so
        assert "SQLSTATE" not in app.log_text()  # the app never ran the migration
    assert pg_server.query(columns, dbname=dbname) == schema_before  # the ADD COLUMN was rolled back too
    assert pg_server.query("SELECT version_num FROM app_data.alembic_version", dbname=dbname) == [("0005",)]
    assert pg_server.query("SELECT title FROM app_data.items", dbname=dbname) == [("before the broken release",)]


ADDITIVE = migration_file("0006", "Add a note to every item.", ["ALTER TABLE items ADD COLUMN note text"])


def test_streamlit_names_the_pending_migration_then_serves_once_it_ran(
    tmp_path: Path, workspace_stub: Any, deployment: tuple[Any, str]
) -> None:
    """Streamlit reaches the pool through database(), like every framework: a page load before the migration says
    which one is missing (and runs no DDL), and the next load after the deployer's upgrade shows the items."""
    project = render(tmp_path, framework="streamlit", driver="psycopg3")
    client, dbname = deployment
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    apprunner.migrate(project, env)  # the release before
    (project / "app" / "migrations" / "versions" / "0006_note.py").write_text(ADDITIVE)
    page = apprunner.driver("streamlit", tmp_path, env, project / "app", str(project / "app" / "main.py"))
    try:
        waiting = page.call("list", user=ALICE)
        apprunner.migrate(project, env)
        served = page.call("list", user=ALICE)
    finally:
        page.close()
    assert not waiting["exceptions"] and len(waiting["errors"]) == 1, waiting
    assert "0006_note.py" in waiting["errors"][0], waiting
    assert not served["exceptions"] and not served["errors"], served


UNIQUE_TITLES = migration_file(
    "0006",
    "Titles are unique from now on (but two users already share one).",
    ["CREATE UNIQUE INDEX items_title_unique ON items (title)"],
)


@pytest.mark.parametrize(
    "answers",
    [{"framework": "flask", "driver": "psycopg3"}, {"framework": "fastapi", "driver": "asyncpg"}],
    ids=["flask-psycopg3", "fastapi-asyncpg"],
)
def test_a_failed_migration_says_its_name_and_no_row_data(
    answers: dict[str, str], tmp_path: Path, workspace_stub: Any, deployment: Any
) -> None:
    """PostgreSQL's DETAIL may quote the duplicated row (another user's title): the deployer's output leaves it out
    unless asked (a CI log is public to the repository), and the app names the pending migration only."""
    secret = "salary review for carol: 180k"
    project = render(tmp_path, **answers)
    client, dbname = deployment
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    with apprunner.running_app(project, env, tmp_path / "v1.log") as app:
        for user in (ALICE, BOB):
            HttpApi(app.url).create(user, secret)

    with released(project, env, tmp_path / "v2.log", "0006_unique_titles.py", UNIQUE_TITLES) as app:
        failed = deployer.run(project / "app", deployer.of(env), "upgrade", "--app-role", client.role)
        assert failed.returncode == 1 and "0006_unique_titles.py" in failed.stderr, failed.stderr
        assert "SQLSTATE 23505" in failed.stderr and "--show-detail" in failed.stderr, failed.stderr
        detailed = deployer.run(project / "app", deployer.of(env), "upgrade", "--show-detail")
        assert detailed.returncode == 1 and "DETAIL:" in detailed.stderr, detailed.stderr
        health = requests.get(f"{app.url}/healthz", timeout=HANG_GUARD)
        assert health.status_code == 503 and "0006_unique_titles.py" in health.json()["database"], health.text
        for leak in ("180k", "carol", "DETAIL", "Key (title)", "duplicate"):
            assert leak not in health.text and leak not in failed.stderr, (leak, health.text, failed.stderr)


NOT_ADDITIVE = migration_file(
    "0006",
    "Rename a column: the previous release's queries would fail on the result.",
    ["ALTER TABLE items RENAME COLUMN title TO name"],
    additive=False,
)


def test_older_code_does_not_serve_after_a_migration_that_is_not_additive(tmp_path: Path, pg_server: Any) -> None:
    old = render(tmp_path / "v1", framework="flask", driver="psycopg3")
    new = tmp_path / "v2" / old.name
    shutil.copytree(old, new)
    (new / "app" / "migrations" / "versions" / "0006_rename.py").write_text(NOT_ADDITIVE)
    role, env = password_role_env(pg_server, tmp_path)
    found = deployer.prepare(pg_server, env["PGDATABASE"])
    deployer.upgrade(old / "app", found, role)
    assert run_in_app(old, env, 'items.create_item(db, "alice@example.com", "one")', False).returncode == 0
    deployer.upgrade(new / "app", found, role)
    assert run_in_app(new, env, "pass", False).returncode == 0
    assert pg_server.query("SELECT version_num FROM app_data.alembic_version", dbname=env["PGDATABASE"]) == [("0006",)]
    refused = run_in_app(old, env, "pass", False)
    assert refused.returncode != 0
    assert "MigrationFailed" in refused.stderr and "migration 0006 declared itself not additive" in refused.stderr


# ---------------------------------------------------------------------------------------------- the deployer's tools
def test_sql_prints_each_new_migrations_ddl_and_additive_flag_without_a_database(tmp_path: Path) -> None:
    project = render(tmp_path, framework="fastapi", driver="sqlalchemy")
    versions = project / "app" / "migrations" / "versions"
    (versions / "0006_note.py").write_text(ADDITIVE)
    (versions / "0007_rename.py").write_text(NOT_ADDITIVE.replace('"0006"', '"0007"').replace('"0005"', '"0006"'))
    done = subprocess.run(
        [str(app_python()), "-m", "database.migrate", "sql", "0005"],
        cwd=project / "app",
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # no PG* at all: nothing connects
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("### Database migrations after 0005\n"), out
    note, rename = out.split("#### ")[1:]
    assert note.startswith("0006_note.py: Add a note to every item.\n\nadditive\n"), note
    assert "ALTER TABLE items ADD COLUMN note text;" in note and "'not additive" not in note, note
    assert rename.startswith("0007_rename.py: Rename a column") and "**not additive**" in rename, rename
    assert "ALTER TABLE items RENAME COLUMN title TO name;" in rename, rename
    assert rename.index("COMMENT ON TABLE app_data.alembic_version IS 'not additive: 0007';") < rename.index("COMMIT;")
    assert "0005_write_once" not in out and "0004_read_as_user" not in out  # only what comes after the revision given


def test_check_names_pending_revisions_and_a_held_lock_has_a_deadline(
    tmp_path: Path, pg_server: Any, workspace_stub: Any, deployment: tuple[Any, str]
) -> None:
    project = render(tmp_path, framework="flask", driver="psycopg3")
    client, dbname = deployment
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    found = deployer.of(env)
    assert found is not None
    pending = deployer.run(project / "app", found, "check")
    assert pending.returncode == 1, pending.stdout + pending.stderr
    assert "pending: 0003_owner_role.py" in pending.stdout and "not additive" in pending.stdout, pending.stdout

    # Another session holds the migration lock (any session may take an advisory lock): the app, started before
    # the migration, answers at once, and the deployer's upgrade gives up after --wait, naming who holds it.
    with pg_server.connect_superuser(dbname) as holder:
        holder.execute("SET application_name = 'a stuck deploy'")
        holder.execute("SELECT pg_advisory_lock(hashtext('app_data.bootstrap'))")
        with apprunner.running_app(project, env, tmp_path / "app.log", ready_path=STATIC, migrate_first=False) as app:
            # The lock is held throughout: an answer at all shows the app waits on no lock (its first call opens the
            # pool: seconds on a busy machine, so the bound is loose).
            health = requests.get(f"{app.url}/healthz", timeout=60)
            assert health.status_code == 503 and "0001_bootstrap.py" in health.text, health.text
            started = time.monotonic()
            stuck = deployer.run(project / "app", found, "upgrade", "--app-role", client.role, "--wait", "2")
            assert stuck.returncode == 1 and time.monotonic() - started < 60, stuck.stderr
            assert "migration lock" in stuck.stderr and "'a stuck deploy'" in stuck.stderr, stuck.stderr
            assert pg_server.query("SELECT to_regclass('app_data.items')", dbname=dbname) == [(None,)]
    apprunner.migrate(project, env)
    assert deployer.run(project / "app", found, "check").returncode == 0


def test_a_migration_waits_for_a_table_lock_until_its_deadline_and_the_app_answers_503_meanwhile(
    tmp_path: Path, pg_server: Any, workspace_stub: Any, deployment: tuple[Any, str]
) -> None:
    """A long transaction holds items: the migration's ALTER waits for it, and every request queued behind that
    ALTER gives up after the app's lock_timeout (503, Retry-After) instead of hanging; the migration gives up after
    its own --lock-timeout, rolled back, naming the wait; then the app serves again."""
    project = render(tmp_path, framework="fastapi", driver="psycopg3")
    client, dbname = deployment
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    with apprunner.running_app(project, env, tmp_path / "app.log") as app:
        api = HttpApi(app.url)
        api.create(ALICE, "kept")
        (project / "app" / "migrations" / "versions" / "0006_note.py").write_text(ADDITIVE)
        found = deployer.of(env)
        assert found is not None
        with pg_server.connect_superuser(dbname) as holder:
            holder.execute("BEGIN")
            holder.execute("SELECT count(*) FROM app_data.items")  # ACCESS SHARE until the transaction ends
            migration = subprocess.Popen(
                [
                    str(app_python()),
                    "-m",
                    "database.migrate",
                    "upgrade",
                    "--app-role",
                    client.role,
                    "--lock-timeout",
                    "20",
                ],
                cwd=project / "app",
                env=found.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            deadline = time.monotonic() + HANG_GUARD
            while not pg_server.query("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'", dbname=dbname):
                assert migration.poll() is None and time.monotonic() < deadline, migration.communicate()[0]
                time.sleep(0.2)
            started = time.monotonic()
            queued = requests.get(f"{app.url}/api/items", headers={"X-Forwarded-Email": ALICE}, timeout=60)
            assert queued.status_code == 503 and queued.headers["Retry-After"], queued.text
            assert time.monotonic() - started < 15, "the request waited longer than the app's lock_timeout"
            out, _ = migration.communicate(timeout=HANG_GUARD)
            holder.execute("ROLLBACK")
        assert migration.returncode == 1, out
        assert "0006_note.py" in out and "SQLSTATE 55P03" in out and "waited 20 s for a lock" in out, out
        assert [title for _, title, _ in api.list(ALICE)] == ["kept"]  # serving again, at 0005
    columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'"
    assert pg_server.query(columns, dbname=dbname) == []
