"""Per-user data enforced by PostgreSQL: row-level security on every table a rendered app serves.

Against the harness's real PostgreSQL, through each driver's own rendered code: a copy of the example's
queries without their owner filter still lists, changes and deletes none of another user's rows; a
connection opened for no user sees no row; the app's role owns nothing, so whatever its session does
(advisory locks, temporary objects that shadow catalogs or functions, SET ROLE, search_path) it can neither
change the schema nor lift the policies; and a migration that adds a table without a policy fails.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import deployer
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
    # asyncpg's queries (Query values in $n): the filter's value is still passed, so it stays, compared to nothing
    copy = re.sub(r"\bowner = (\$\d+)", r"\1::text IS NOT NULL", copy)
    assert copy != source and not re.search(r"owner = (%\(|\$)|\.where\([^\n]*c\.owner|c\.owner ==", copy), copy
    name = f"{queries}_without_owner_filter"
    (app / f"{name.replace('.', '/')}.py").write_text(copy)
    return name


def run_in_app(app: Path, env: dict[str, str], code: str, is_async: bool) -> str:
    """Run ``code`` in app/ with ``items`` (the example feature) and ``db`` (an opened Database); its stdout."""
    feature = f"import importlib\nitems = importlib.import_module({module_of(app, 'def list_items(db')!r})"
    done = run_with_database(app, env, code, is_async, feature)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def as_app_role(pg_server: Any, role: str, env: dict[str, str]) -> psycopg.Connection:
    """A connection as the app's role itself, outside the app's code, with no user set."""
    dsn = pg_server.dsn_for(role, env["PGPASSWORD"], dbname=env["PGDATABASE"], options="-c search_path=app_data")
    return psycopg.connect(dsn, autocommit=True)


@pytest.mark.parametrize("driver", list(FRAMEWORK))
def test_another_users_rows_are_refused_by_the_database_itself(driver: str, tmp_path: Path, pg_server: Any) -> None:
    app = render(tmp_path, framework=FRAMEWORK[driver], driver=driver) / "app"
    role, env, owner = deployer.migrated(pg_server, tmp_path, app)
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
        print("got", {w}items.get_item(db, "alice@example.com", theirs["id"]))
        print("paged", [i["title"] for i in ({w}items.list_page(db, "alice@example.com"))[0]])
        print("read as alice", [dict(r) for r in {w}db.fetch_all("SELECT title FROM items", user="alice@example.com")])
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
        "got None",
        'paged ["alice\'s"]',
        "read as alice [{'title': \"alice's\"}]",
        "updated None",
        "marked None",
        "deleted False",
        "own still mine",
        "no user 0 0",
        "healthy True",
    ], out
    with as_app_role(pg_server, role, env) as conn:
        assert conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'items'").fetchone() == (owner.owner,)
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)  # no user, no rows
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO items (owner, title) VALUES ('mallory@example.com', 'planted')")
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        rows = admin.execute("SELECT owner, title, done FROM app_data.items ORDER BY id").fetchall()
        assert rows == [("alice@example.com", "still mine", True), ("bob@example.com", "bob's", False)]
        # The control: without row-level security the same copy lists Bob's row to Alice.
        admin.execute("ALTER TABLE app_data.items DISABLE ROW LEVEL SECURITY")
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


# Each attempt runs through the driver's own pool, held to one connection so that what one call leaves in the
# session (a lock, a temporary object, a setting, a role) is there for the next.
ESCAPES = {
    "the migration lock": ["SELECT pg_advisory_lock(hashtext('app_data.bootstrap'))"],
    "a forged pg_locks": [
        "CREATE TEMP TABLE pg_locks (locktype text, pid int, granted boolean, objsubid int, classid oid, objid oid)",
        "INSERT INTO pg_temp.pg_locks SELECT 'advisory', pg_backend_pid(), true, 1, "
        "(hashtext('app_data.bootstrap')::bigint >> 32)::oid, (hashtext('app_data.bootstrap')::bigint & 4294967295)::oid",
    ],
    "temporary functions first on the search_path": [
        "CREATE FUNCTION pg_temp.app_user() RETURNS text LANGUAGE sql AS $$ SELECT 'bob@example.com' $$",
        "CREATE FUNCTION pg_temp.current_setting(text, boolean) RETURNS text LANGUAGE sql AS $$ SELECT 'bob@example.com' $$",
        "CREATE FUNCTION pg_temp.migrating() RETURNS boolean LANGUAGE sql AS $$ SELECT true $$",
        "SELECT set_config('search_path', 'pg_temp, app_data, pg_catalog', false)",
    ],
    "SET ROLE to the owner": ["SET ROLE {owner}"],
    "RESET ROLE": ["RESET ROLE", "SET SESSION AUTHORIZATION DEFAULT"],
    "row_security off": ["SELECT set_config('row_security', 'off', false)"],
}
CHANGES = [  # what only the owner may do: each must be refused (42501) whatever came before
    "ALTER TABLE items DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE items NO FORCE ROW LEVEL SECURITY",
    "DROP POLICY items_owner ON items",
    "CREATE POLICY mine ON items USING (true)",
    "ALTER POLICY items_owner ON items USING (true)",
    "DROP TABLE items",
    "TRUNCATE items",
    "ALTER TABLE items OWNER TO CURRENT_USER",
    "CREATE TABLE app_data.mine (id int)",
    "CREATE OR REPLACE FUNCTION app_data.app_user() RETURNS text LANGUAGE sql AS $$ SELECT 'bob@example.com' $$",
    "UPDATE alembic_version SET version_num = '9999'",
    "COMMENT ON TABLE alembic_version IS 'not additive: 9999'",
]


@pytest.mark.parametrize("driver", list(FRAMEWORK))
def test_the_apps_role_cannot_escape_row_security_whatever_its_session_does(
    driver: str, tmp_path: Path, pg_server: Any
) -> None:
    app = render(tmp_path, framework=FRAMEWORK[driver], driver=driver) / "app"
    role, env, found = deployer.migrated(pg_server, tmp_path, app)
    env.update(DB_POOL_MAX_SIZE="1", DB_POOL_MIN_SIZE="1")  # one connection: the session is the same throughout
    w = "await " if driver == "asyncpg" else ""
    escapes = {name: [s.format(owner=f'"{found.owner}"') for s in sql] for name, sql in ESCAPES.items()}
    out = run_in_app(
        app,
        env,
        f"""
        import json
        def state(error):
            code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
            return code or getattr(getattr(error, "orig", None), "sqlstate", None) or type(error).__name__
        {w}items.create_item(db, "alice@example.com", "alice's")
        {w}items.create_item(db, "bob@example.com", "bob's")
        {"async " if w else ""}def attempt(call):
            try:
                return {w}call()
            except Exception as error:
                return state(error)
        report = {{}}
        for name, statements in {escapes!r}.items():
            tried = [{w}attempt(lambda: db.execute(statement)) for statement in statements]
            refused = [{w}attempt(lambda: db.execute(change)) for change in {CHANGES!r}]
            report[name] = {{
                "tried": ["ran" if isinstance(t, int) else t for t in tried],
                "refused": sorted({{"ran" if isinstance(r, int) else r for r in refused}}),
                "seen": {w}attempt(lambda: db.fetch_all("SELECT title FROM items ORDER BY id")),
                "as_alice": {w}attempt(lambda: db.fetch_all("SELECT title FROM items", user="alice@example.com")),
                "taken": {w}attempt(lambda: db.execute("UPDATE items SET owner = 'alice@example.com'", user="alice@example.com")),
                "deleted": {w}attempt(lambda: db.execute("DELETE FROM items")),
            }}
            {w}db.execute("RESET ROLE")
            {w}db.fetch_all("SELECT set_config('search_path', 'app_data', false)")
            {w}db.fetch_all("SELECT set_config('row_security', 'on', false)")
        print(json.dumps(report))
        """,
        driver == "asyncpg",
    )
    report = json.loads(out.strip().splitlines()[-1])
    for name, after in report.items():
        assert after["refused"] == ["42501"], (name, after)  # every change: insufficient_privilege
        if name == "row_security off":  # then a query that the policies would filter fails instead
            assert after["seen"] == after["as_alice"] == after["taken"] == after["deleted"] == "42501", after
            continue
        assert after["seen"] == [] and after["deleted"] == 0, (name, after)
        assert after["as_alice"] == [{"title": "alice's"}] and after["taken"] == 1, (name, after)
    assert report["SET ROLE to the owner"]["tried"] == ["42501"], report  # not a member of the owner role
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        rows = admin.execute("SELECT owner, title FROM app_data.items ORDER BY id").fetchall()
        assert rows == [("alice@example.com", "alice's"), ("bob@example.com", "bob's")]
        policies = admin.execute("SELECT polname FROM pg_policy WHERE polrelid = 'app_data.items'::regclass")
        assert policies.fetchall() == [("items_owner",)]
        assert admin.execute("SELECT version_num FROM app_data.alembic_version").fetchall() == [("0005",)]
        grants = admin.execute(
            "SELECT has_database_privilege('public', current_database(), 'CONNECT'), "
            "has_table_privilege(%s, 'app_data.alembic_version', 'UPDATE'), "
            "has_table_privilege(%s, 'app_data.items', 'TRUNCATE'), "
            "has_function_privilege('public', 'app_data.items_for(text)', 'EXECUTE'), "
            "has_function_privilege(%s, 'app_data.items_for(text)', 'EXECUTE'), "
            "(SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = 'app_data.items_for(text)'::regprocedure)",
            [role, role, role],
        )
        assert grants.fetchone() == (False, False, False, False, True, found.owner)


UNPROTECTED = migration_file(
    "0006",
    "Add notes, forgetting their policy.",
    ["CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner text NOT NULL)"],
)


def new_table_policy(page: Path) -> str:
    """The rendered docs/change-the-schema.md's statements that give a new table (``notes``) its policies."""
    section = page.read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", section, re.S) if "CREATE POLICY notes" in b]
    return textwrap.indent(textwrap.dedent(block), "    ")


def test_a_migration_that_adds_a_table_without_a_policy_fails(tmp_path: Path, pg_server: Any) -> None:
    project = render(tmp_path, framework="flask", driver="psycopg3")
    app = project / "app"
    role, env, found = deployer.migrated(pg_server, tmp_path, app)
    migration = app / "migrations" / "versions" / "0006_notes.py"
    migration.write_text(UNPROTECTED)
    failed = deployer.run(app, found, "upgrade", "--app-role", role)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "migration 0006_notes.py" in failed.stderr and "notes" in failed.stderr, failed.stderr
    assert "row-level security" in failed.stderr and "rolled back" in failed.stderr, failed.stderr
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        assert admin.execute("SELECT version_num FROM app_data.alembic_version").fetchall() == [("0005",)]
        assert admin.execute("SELECT to_regclass('app_data.notes')").fetchone() == (None,)  # rolled back whole

    migration.write_text(UNPROTECTED + new_table_policy(project / "docs" / "change-the-schema.md"))  # what the docs say
    passed = deployer.run(app, found, "upgrade", "--app-role", role)
    assert passed.returncode == 0, passed.stderr
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        assert admin.execute("SELECT version_num FROM app_data.alembic_version").fetchall() == [("0006",)]
        assert admin.execute(
            "SELECT relrowsecurity, relforcerowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) "
            "FROM pg_class AS c WHERE oid = 'app_data.notes'::regclass"
        ).fetchone() == (True, True, 1)
    # The app's role was granted the new table by default privileges: it reads and writes its own notes only.
    with as_app_role(pg_server, role, env) as conn:
        conn.execute("SELECT set_config('app.user', 'alice@example.com', false)")
        conn.execute("INSERT INTO notes (owner) VALUES ('alice@example.com')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO notes (owner) VALUES ('bob@example.com')")
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (1,)
