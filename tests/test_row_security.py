"""Per-user data enforced by PostgreSQL: row-level security on every table a rendered app serves.

Against the harness's real PostgreSQL, through each driver's own rendered code: a copy of the example's
queries without their owner filter still lists, changes and deletes none of another user's rows; a
connection opened for no user sees no row; the table's owner (the app's own role) is refused as well,
because the policies are forced; and a migration that adds a table without a policy fails.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.appenv import app_python, password_role_env
from tests.support.in_app import run_with_database
from tests.support.migration_file import migration_file
from tests.support.template import render

FRAMEWORK = {"psycopg3": "flask", "psycopg2": "flask", "asyncpg": "fastapi", "sqlalchemy": "flask"}

# What "the owner filter" is in each kind of queries module, and what the copy puts in its place.
OWNER_FILTERS = [
    (" WHERE owner = %(owner)s", ""),  # LIST_ITEMS, the count in CREATE_ITEM (SQL)
    (" AND owner = %(owner)s", ""),  # LIST_PAGE, UPDATE_ITEM, DELETE_ITEM (SQL)
    ('.where(items.c.owner == bindparam("owner"))', ""),  # LIST_ITEMS, KEPT (Core)
    (', items.c.owner == bindparam("owner"))', ",)"),  # THEIRS, LIST_PAGE (Core): still a tuple
]


def module_of(app: Path, defines: str) -> str:
    """The dotted name of the one module under app/ whose source has ``defines`` (wherever the layout puts it)."""
    (path,) = [p for p in app.rglob("*.py") if defines in p.read_text() and "migrations" not in p.parts]
    parts = path.relative_to(app).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def copy_without_owner_filter(app: Path) -> str:
    """Write the example's queries, minus every owner filter, beside them; returns the copy's module name."""
    queries = module_of(app, "LIST_ITEMS =")
    source = (app / f"{queries.replace('.', '/')}.py").read_text()
    copy = source
    for written, instead in OWNER_FILTERS:
        copy = copy.replace(written, instead)
    assert copy != source and not re.search(r"WHERE[^\n]*owner|\.where\([^\n]*c\.owner|c\.owner ==", copy), copy
    name = f"{queries}_without_owner_filter"
    (app / f"{name.replace('.', '/')}.py").write_text(copy)
    return name


def run_in_app(app: Path, env: dict[str, str], code: str, is_async: bool) -> str:
    """Run ``code`` in app/ with ``items`` (the example feature) and ``db`` (an opened Database); its stdout."""
    feature = f"import importlib\nitems = importlib.import_module({module_of(app, 'def list_items(db')!r})"
    done = run_with_database(app, env, code, is_async, feature)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def as_owner(pg_server: Any, role: str, env: dict[str, str]) -> psycopg.Connection:
    """A connection as the app's role itself (it owns the schema and the table), with no user set."""
    dsn = pg_server.dsn_for(role, env["PGPASSWORD"], dbname=env["PGDATABASE"], options="-c search_path=app_data")
    return psycopg.connect(dsn, autocommit=True)


@pytest.mark.parametrize("driver", list(FRAMEWORK))
def test_another_users_rows_are_refused_by_the_database_itself(driver: str, tmp_path: Path, pg_server: Any) -> None:
    app = render(tmp_path, framework=FRAMEWORK[driver], driver=driver) / "app"
    role, env = password_role_env(pg_server, tmp_path)
    unfiltered = copy_without_owner_filter(app)
    w = "await " if driver == "asyncpg" else ""
    out = run_in_app(
        app,
        env,
        f"""
        mine = {w}items.create_item(db, "alice@example.com", "alice's")
        theirs = {w}items.create_item(db, "bob@example.com", "bob's")
        items.queries = importlib.import_module({unfiltered!r})  # every query of the feature, minus its owner filter
        print("listed", [item["title"] for item in {w}items.list_items(db, "alice@example.com")])
        print("updated", {w}items.update_item(db, "alice@example.com", theirs["id"], title="taken", done=True))
        print("marked", {w}items.update_item(db, "alice@example.com", theirs["id"], done=True))
        print("deleted", {w}items.delete_item(db, "alice@example.com", theirs["id"]))
        print("own", ({w}items.update_item(db, "alice@example.com", mine["id"], title="still mine", done=True))["title"])
        print("no user", len({w}db.fetch_all("SELECT * FROM items")), {w}db.execute("DELETE FROM items"))
        print("healthy", {w}db.ping())
        """,
        driver == "asyncpg",
    )
    assert out.split("\n")[:-1] == [
        'listed ["alice\'s"]',
        "updated None",
        "marked None",
        "deleted False",
        "own still mine",
        "no user 0 0",
        "healthy True",
    ], out
    with as_owner(pg_server, role, env) as owner:
        assert owner.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'items'").fetchone() == (role,)
        assert owner.execute("SELECT count(*) FROM items").fetchone() == (0,)  # FORCE: the owner sees nothing
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            owner.execute("INSERT INTO items (owner, title) VALUES ('mallory@example.com', 'planted')")
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        rows = admin.execute("SELECT owner, title, done FROM app_data.items ORDER BY id").fetchall()
        assert rows == [("alice@example.com", "still mine", True), ("bob@example.com", "bob's", False)]
        # The control: without FORCE the owner is the app's role, and the same copy lists Bob's row to Alice.
        admin.execute("ALTER TABLE app_data.items NO FORCE ROW LEVEL SECURITY")
    leak = run_in_app(
        app,
        env,
        f"""
        items.queries = importlib.import_module({unfiltered!r})
        print([item["title"] for item in {w}items.list_items(db, "alice@example.com")])
        """,
        driver == "asyncpg",
    )
    assert leak.strip() == "['still mine', \"bob's\"]"


UNPROTECTED = migration_file(
    "0003",
    "Add notes, forgetting their policy.",
    ["CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner text NOT NULL)"],
)


def new_table_policy(readme: Path) -> str:
    """The rendered README's statements that give a new table (``notes``) its policies, as migration lines."""
    section = readme.read_text().split("## Change the schema", 1)[1].split("\n## ", 1)[0]
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "CREATE POLICY notes" in b]
    return textwrap.indent(textwrap.dedent(block), "    ")


def test_a_migration_that_adds_a_table_without_a_policy_fails(tmp_path: Path, pg_server: Any) -> None:
    project = render(tmp_path, framework="flask", driver="psycopg3")
    app = project / "app"
    _, env = password_role_env(pg_server, tmp_path)
    migration = app / "migrations" / "versions" / "0003_notes.py"
    migration.write_text(UNPROTECTED)
    failed = subprocess.run(
        [str(app_python()), "-m", "database.migrate", "upgrade"], cwd=app, env=env, capture_output=True, text=True
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "migration 0003_notes.py" in failed.stderr and "notes" in failed.stderr, failed.stderr
    assert "row-level security" in failed.stderr and "rolled back" in failed.stderr, failed.stderr
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        assert admin.execute("SELECT version_num FROM app_data.alembic_version").fetchall() == [("0002",)]
        assert admin.execute("SELECT to_regclass('app_data.notes')").fetchone() == (None,)  # rolled back whole

    migration.write_text(UNPROTECTED + new_table_policy(project / "README.md"))  # what the README says to add
    passed = subprocess.run(
        [str(app_python()), "-m", "database.migrate", "upgrade"], cwd=app, env=env, capture_output=True, text=True
    )
    assert passed.returncode == 0, passed.stderr
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        assert admin.execute("SELECT version_num FROM app_data.alembic_version").fetchall() == [("0003",)]
        assert admin.execute(
            "SELECT relrowsecurity, relforcerowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) "
            "FROM pg_class AS c WHERE oid = 'app_data.notes'::regclass"
        ).fetchone() == (True, True, 2)
