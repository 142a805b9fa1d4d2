{%- set driver = cookiecutter.driver -%}
{%- set is_async = cookiecutter.__is_async == "True" -%}
"""Versioned, forward-only schema migrations (Alembic), run by whoever deploys, before the code that needs them.

From app/, as yourself (PG* for your own login, and your Lakebase credential or PGPASSWORD):

    python -m database.migrate upgrade --app-role <role>  # apply what is pending as the owner role; grant <role>
    python -m database.migrate check                      # exit 1 and name the pending revisions
    python -m database.migrate current                    # the revision the database is at
    python -m database.migrate sql 0002                   # the SQL of every revision after 0002 (Markdown)
    python -m database.migrate history                    # every migration this code has
    python -m database.migrate revision -m "add a due date"{{ " [--autogenerate]" if driver == "sqlalchemy" }}

Roles, one job each (docs/database.md, "Whose rows"):
- the owner role (``--owner-role`` or DB_OWNER_ROLE) owns the schema, its tables, functions and policies.
  Nobody logs in as it: ``upgrade`` logs in as you and runs ``SET ROLE <owner>``, so every object belongs to
  it whoever deploys (a person in dev, CI's service principal in prod), and while migrations run the session
  has the owner's privileges only, not yours. It needs BYPASSRLS, so that a backfill reaches every user's rows.
  Without it, ``upgrade`` runs as you and you own what it creates.
- the app's role (``--app-role`` or DB_APP_ROLE; on Databricks the app's service principal, its PGUSER) gets
  USAGE on the schema and SELECT, INSERT, UPDATE, DELETE on its tables (SELECT only on the version table),
  also on tables later migrations add (ALTER DEFAULT PRIVILEGES). It owns nothing, so it can neither change
  the schema nor lift row-level security.

Alembic reaches PostgreSQL through SQLAlchemy's dialect for this app's driver, and each login goes through
credentials.py like the pool's. A session advisory lock keeps two deploys from migrating at once; ``upgrade``
waits for it at most ``--wait`` seconds and then names the session that holds it.
"""

import argparse
{%- if is_async %}
import asyncio
{%- endif %}
import contextlib
import functools
import importlib.util
import io
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
{%- if is_async %}
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
{%- else %}
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError
{%- endif %}
from sqlalchemy.pool import NullPool

{% if is_async -%}
from .connection import connect_args
{% endif -%}
from .credentials import PasswordSource, login, password_source
{%- if not is_async %}
from .libpq import connect_args
{%- endif %}
from .schema import (
    BEFORE_ROW_SECURITY,
    CREATE,
    LOCK_HOLDER,
    TRY_LOCK,
    UNLOCK,
    UNPROTECTED,
    VERSION_TABLE,
    MigrationFailed,
    check_row_security,
    mark_not_additive,
)
from .settings import SCHEMA, Settings, load_settings

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
{%- if driver == "psycopg2" %}
DIALECT = "postgresql+psycopg2://"
{%- elif is_async %}
DIALECT = "postgresql+asyncpg://"
{%- else %}
DIALECT = "postgresql+psycopg://"
{%- endif %}
WAIT_FOR_LOCK = 60.0  # seconds `upgrade` waits for another deploy's migration before it gives up
# How long one migration statement may wait for a table lock (the app's own transactions last seconds at most):
# past it the migration is rolled back and says so, instead of queueing every request behind it.
MIGRATION_LOCK_TIMEOUT = 10.0

# Objects of the schema that do not belong to the owner role yet (an earlier version of this app had its own
# role own everything). The schema comes first: a new owner needs CREATE on it to take its tables. Sequences of
# identity columns follow their table.
NOT_OWNED = """
SELECT 0 AS rank, 'SCHEMA' AS kind, quote_ident(n.nspname) AS name, n.nspowner::regrole::text AS owned_by
FROM pg_namespace AS n WHERE n.nspname = :schema AND n.nspowner <> CAST(:owner AS regrole)
UNION ALL
SELECT 1, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                 ELSE 'TABLE' END,
       c.oid::regclass::text, c.relowner::regrole::text
FROM pg_class AS c
WHERE c.relnamespace = to_regnamespace(:schema) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND c.relowner <> CAST(:owner AS regrole)
  AND NOT EXISTS (SELECT FROM pg_depend AS d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype IN ('a', 'i'))
UNION ALL
SELECT 1, CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure::text,
       p.proowner::regrole::text
FROM pg_proc AS p WHERE p.pronamespace = to_regnamespace(:schema) AND p.proowner <> CAST(:owner AS regrole)
ORDER BY rank, kind, name
"""
ROLE = """
SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
       pg_has_role(r.oid, CAST(current_user AS regrole), 'MEMBER') AS acts_as_owner
FROM pg_roles AS r WHERE r.rolname = :role
"""
DATABASE = """
SELECT quote_ident(datname) AS name, datdba::regrole::text AS owned_by,
       pg_has_role(current_user, datdba, 'USAGE') AS ours
FROM pg_database WHERE datname = current_database()
"""


class RoleProblem(MigrationFailed):
    """The roles given cannot do their one job: nothing was changed."""


@dataclass(frozen=True)
class Roles:
    owner: str | None  # None: the login role itself owns what the migrations create
    app: str | None  # None: nobody is granted the schema (the app answers 503 until someone is)


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")  # 0002_add_a_due_date.py
    if importlib.util.find_spec("ruff"):  # in the dev environment: new migration files come out lint-clean
        config.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
        for hook, options in (("ruff_fix", "check --fix --quiet"), ("ruff_format", "format --quiet")):
            config.set_section_option("post_write_hooks", f"{hook}.type", "module")
            config.set_section_option("post_write_hooks", f"{hook}.module", "ruff")
            config.set_section_option("post_write_hooks", f"{hook}.options", f"{options} REVISION_SCRIPT_FILENAME")
    return config


def engine(settings: Settings, passwords: PasswordSource) -> {{ "AsyncEngine" if is_async else "Engine" }}:
    """An engine without a pool (migrations need one connection, once) that logs in like the app."""
    created = {{ "create_async_engine" if is_async else "create_engine" }}(DIALECT, poolclass=NullPool, connect_args=connect_args(settings, migration=True))

    @event.listens_for(created{{ ".sync_engine" if is_async }}, "do_connect")
    def _login_with_current_token(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        return login(lambda password: dialect.connect(*cargs, **cparams, password=password), passwords)

    return created


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _describe(script: ScriptDirectory, revision: str) -> str:
    found = script.get_revision(revision)
    return f"{Path(found.path).name} ({found.doc})" if found is not None else revision


def _database_error(error: Exception, detail: bool) -> tuple[str, str]:
    """The SQLSTATE and the database's own words (its DETAIL only if asked), without SQLAlchemy's wrapping."""
    orig = getattr(error, "orig", None)
    if orig is None:
        return "none", f"{type(error).__name__}: {error}"
    native = orig.__cause__ or orig  # asyncpg's own exception, under SQLAlchemy's adapter
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or getattr(native, "sqlstate", None)
    reason = str(orig).strip().split("\nDETAIL:")[0]
    found = getattr(native, "detail", None) or (str(orig).split("\nDETAIL:", 1)[1:] or [None])[0]
    if detail and found:
        reason += f"\nDETAIL:  {found.strip()}"
    elif found:
        reason += "\n(its detail is left out: it may quote rows, other users' data; --show-detail prints it)"
    return sqlstate or "none", reason


def _lock(conn: Connection, wait: float) -> None:
    """Take the migration lock, waiting at most ``wait`` seconds for another deploy's migration."""
    deadline = time.monotonic() + wait
    while not conn.execute(text(TRY_LOCK)).scalar():
        conn.commit()
        if time.monotonic() >= deadline:
            holders = [dict(row) for row in conn.execute(text(LOCK_HOLDER)).mappings()]
            said = "; ".join(
                f"pid {h['pid']}, role {h['role']}, application {h['application']!r}, since {h['since']}"
                for h in holders
            )
            raise MigrationFailed(
                f"another session holds the migration lock ({said or 'it has just ended'}); waited {wait:.0f} s. "
                "Let it finish and run upgrade again, or end it: SELECT pg_terminate_backend(<pid>)"
            )
        time.sleep(0.5)
    conn.commit()


def _hand_over(conn: Connection, owner: str) -> None:
    """Give the owner role whatever in the schema is someone else's (once, for a schema earlier versions made)."""
    found = list(conn.execute(text(NOT_OWNED), {"schema": SCHEMA, "owner": owner}).mappings())
    conn.commit()
    if not found:
        return
    before = sorted({row["owned_by"] for row in found})
    try:
        for row in found:
            conn.execute(text(f"ALTER {row['kind']} {row['name']} OWNER TO {quoted(owner)}"))
        conn.commit()
    except DBAPIError as error:
        conn.rollback()
        me = conn.execute(text("SELECT session_user")).scalar()
        conn.commit()
        grants = " ".join(f"GRANT {quoted(role)} TO {quoted(me)};" for role in before)
        alters = " ".join(f"ALTER {row['kind']} {row['name']} OWNER TO {quoted(owner)};" for row in found)
        raise RoleProblem(
            f"schema {SCHEMA} (or what is in it) belong to {', '.join(before)}, not to the owner role {owner}, and "
            f"{me} may not hand them over: {_database_error(error, False)[1].splitlines()[0]}. Nothing was changed. "
            f"Either, once, as a role that administers {', '.join(before)} (locally the superuser): {grants} then run "
            f"upgrade again, which hands everything to {owner}, and REVOKE that membership. "
            f"Or as {', '.join(before)}: {alters}"
        ) from error
    log.info("handed %d object(s) of schema %s from %s to role %s", len(found), SCHEMA, ", ".join(before), owner)


def _become_owner(conn: Connection, owner: str) -> None:
    try:
        conn.execute(text(f"SET ROLE {quoted(owner)}"))
    except DBAPIError as error:
        conn.rollback()
        me = conn.execute(text("SELECT session_user")).scalar()
        conn.commit()
        raise RoleProblem(
            f"{me} cannot act as the owner role {owner} ({_database_error(error, False)[1].splitlines()[0]}): "
            f"membership is needed (GRANT {quoted(owner)} TO {quoted(me)}, by a role that administers {owner})"
        ) from error
    bypass = conn.execute(text("SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user")).scalar()
    conn.commit()
    if not bypass:
        raise RoleProblem(
            f"the owner role {owner} has no BYPASSRLS: a migration's UPDATE or DELETE would see no user's rows and a "
            f"backfill would change nothing. Give it the attribute (ALTER ROLE {quoted(owner)} BYPASSRLS; on "
            "Databricks `attributes: {bypassrls: true}` on the bundle's postgres_roles entry)"
        )


def _check_app_role(conn: Connection, app: str) -> None:
    found = conn.execute(text(ROLE), {"role": app}).mappings().one_or_none()
    conn.commit()
    if found is None:
        raise RoleProblem(f"the app's role {app} does not exist (on Databricks: the app's service principal, PGUSER)")
    if found["acts_as_owner"]:
        raise RoleProblem(
            f"the app's role {app} is the owner role or may act as it: it could change the schema and lift "
            "row-level security. Give the app a role of its own (--app-role) and the schema an owner (--owner-role)"
        )
    if found["superuser"] or found["bypassrls"]:
        raise RoleProblem(f"the app's role {app} bypasses row-level security (superuser or BYPASSRLS): never serve so")


def _grant(conn: Connection, app: str) -> None:
    """What the app's role may do, in one transaction: USAGE, DML and EXECUTE, SELECT only on the version table,
    the same on what later migrations add, and CONNECT on the database, which PUBLIC no longer has where we can."""
    role = quoted(app)
    for statement in (
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role}",
        f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {SCHEMA} TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {SCHEMA} TO {role}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {SCHEMA} TO {role}",  # items_for() (0004): not PUBLIC's
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {SCHEMA}.{VERSION_TABLE} FROM {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} GRANT USAGE, SELECT ON SEQUENCES TO {role}",
    ):
        conn.execute(text(statement))
    database = conn.execute(text(DATABASE)).mappings().one()
    if database["ours"]:
        conn.execute(text(f"GRANT CONNECT ON DATABASE {database['name']} TO {role}, SESSION_USER"))
        conn.execute(text(f"REVOKE CONNECT ON DATABASE {database['name']} FROM PUBLIC"))
    else:
        # REVOKE from PUBLIC takes the grant its owner made: only the database's owner can.
        log.warning(
            "database %s belongs to %s, not to the owner role: every role may still CONNECT to it. As %s: "
            "GRANT CONNECT ON DATABASE %s TO %s; REVOKE CONNECT ON DATABASE %s FROM PUBLIC",
            database["name"],
            database["owned_by"],
            database["owned_by"],
            database["name"],
            role,
            database["name"],
        )
    conn.commit()
    log.info("granted role %s the use of schema %s (no ownership, no DDL)", app, SCHEMA)


VERSIONS = {"version_table": VERSION_TABLE, "version_table_schema": SCHEMA}  # where Alembic keeps its revision


def _heads(conn: Connection) -> list[str]:
    """The revisions the database is at (none before the first migration)."""
    return list(MigrationContext.configure(conn, opts=VERSIONS).get_current_heads())


def _refuse_newer(script: ScriptDirectory, current: list[str]) -> None:
    newer = [revision for revision in current if not _known(script, revision)]
    if newer:
        raise MigrationFailed(
            f"the database is at revision {', '.join(newer)}, newer than this code (head "
            f"{script.get_current_head()}): deploy the code that has it, not this one"
        )


class _Applied:
    """Alembic's on_version_apply hook, called inside each migration's transaction: refuses a table left without
    row-level security, marks a revision that is not additive where old code can read it, and lists the revisions
    applied so far (to log them, and to name the one that failed)."""

    def __init__(self) -> None:
        self.revisions: list[str] = []

    def __call__(self, ctx: MigrationContext, step: Any, **kw: Any) -> None:
        if step.up_revision_id not in BEFORE_ROW_SECURITY:
            tables = {"schema": SCHEMA, "version_table": VERSION_TABLE}
            check_row_security(list(ctx.connection.execute(text(UNPROTECTED), tables).scalars()))
        if getattr(step.up_revision.module, "additive", True) is False:
            ctx.connection.execute(text(mark_not_additive(step.up_revision_id)))
        self.revisions.append(step.up_revision_id)


def _failure(error: Exception, failed: str, show_detail: bool, lock_timeout: float) -> MigrationFailed:
    """What a failed migration says: its file, the SQLSTATE and the database's words."""
    state, reason = _database_error(error, show_detail)
    if state == "55P03":  # lock_not_available
        reason += f"\n(it waited {lock_timeout:g} s for a lock another session holds: let it finish, run again)"
    return MigrationFailed(f"migration {failed} failed and was rolled back (SQLSTATE {state}): {reason}")


def _migrate(conn: Connection, config: Config, show_detail: bool, lock_timeout: float) -> None:
    """Apply every pending migration, each in its own transaction (the lock is held by the caller)."""
    conn.execute(text(CREATE))
    current = _heads(conn)
    conn.commit()  # Alembic must start outside a transaction to commit each migration on its own
    script = ScriptDirectory.from_config(config)
    _refuse_newer(script, current)
    pending = [s.revision for s in reversed(list(script.iterate_revisions("heads", current[0] if current else "base")))]
    applied = _Applied()
    config.attributes.update(connection=conn, on_version_apply=applied)
    try:
        command.upgrade(config, "heads")
    except Exception as error:
        done = len(applied.revisions)
        failed = _describe(script, pending[done]) if done < len(pending) else "?"
        raise _failure(error, failed, show_detail, lock_timeout) from error
    for revision in applied.revisions:
        log.info("applied migration %s", _describe(script, revision))


def _set_lock_timeout(conn: Connection, seconds: float) -> None:
    """For the whole session: a migration statement waits at most this long for a table lock."""
    conn.execute(text("SELECT set_config('lock_timeout', :limit, false)"), {"limit": f"{round(seconds * 1000)}ms"})
    conn.commit()


def _unlock(conn: Connection) -> None:
    """Back to the login role, and the migration lock released (a lost connection released it with its session)."""
    with contextlib.suppress(DBAPIError):
        conn.rollback()
        conn.execute(text("RESET ROLE"))
        conn.execute(text(UNLOCK))
        conn.commit()


def _upgrade(
    conn: Connection,
    config: Config,
    roles: Roles,
    wait: float,
    show_detail: bool = False,
    lock_timeout: float = MIGRATION_LOCK_TIMEOUT,
) -> None:
    """The deploy step: lock, hand earlier versions' objects to the owner, migrate as the owner, grant the app."""
    _set_lock_timeout(conn, lock_timeout)
    _lock(conn, wait)
    try:
        if roles.owner:
            _hand_over(conn, roles.owner)
            _become_owner(conn, roles.owner)
        if roles.app:
            _check_app_role(conn, roles.app)  # against the role the migrations run as
        _migrate(conn, config, show_detail, lock_timeout)
        if roles.app:
            _grant(conn, roles.app)
        else:
            log.warning("no --app-role (DB_APP_ROLE): no role was granted schema %s; the app answers 503 until", SCHEMA)
    finally:
        _unlock(conn)


def _pending(conn: Connection, config: Config) -> tuple[list[str], list[Script]]:
    """The revisions the database is at, and this code's revisions it has not applied (oldest first)."""
    has_table = conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{SCHEMA}.{VERSION_TABLE}"}).scalar()
    current = _heads(conn) if has_table else []
    conn.commit()
    script = ScriptDirectory.from_config(config)
    if any(not _known(script, revision) for revision in current):
        return current, []
    return current, list(reversed(list(script.iterate_revisions("heads", current[0] if current else "base"))))


def _is_additive(revision: Script) -> bool:
    return getattr(revision.module, "additive", True) is not False


def offline_sql(config: Config, after: str) -> str:
    """The SQL each revision after ``after`` runs (Alembic's offline mode), as Markdown for a CI step summary."""
    script = ScriptDirectory.from_config(config)
    lower = "base" if after in ("", "base") else after
    if lower != "base" and not _known(script, lower):
        raise MigrationFailed(f"revision {after} is not one of this code's ({', '.join(_all(script))})")
    revisions = list(reversed(list(script.iterate_revisions("heads", lower))))
    if lower != "base":
        revisions = [r for r in revisions if r.revision != lower]
    lines = [f"### Database migrations after {after or 'base'}", ""]
    if not revisions:
        lines.append("None: the code adds no migration.")
    for revision in revisions:
        buffer = io.StringIO()
        config.attributes.update(output_buffer=buffer)
        start = revision.down_revision if isinstance(revision.down_revision, str) else None
        command.upgrade(config, f"{start}:{revision.revision}" if start else revision.revision, sql=True)
        body = buffer.getvalue().strip()
        if not _is_additive(revision):  # written in the migration's own transaction, as upgrade does
            head, commit, tail = body.rpartition("COMMIT;")
            body = f"{head}{mark_not_additive(revision.revision)};\n\n{commit}{tail}" if commit else body
        flag = "additive" if _is_additive(revision) else "**not additive** (`additive = False`)"
        lines += [f"#### {Path(revision.path).name}: {revision.doc}", "", f"{flag}", "", "```sql", body, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _all(script: ScriptDirectory) -> list[str]:
    return [s.revision for s in reversed(list(script.walk_revisions()))]


{% if is_async -%}
async def on_connection(work: Callable[[Connection], Any], settings: Settings, passwords: PasswordSource) -> Any:
    """Run ``work`` (synchronous, as Alembic is) on one new connection that logs in like the app."""
    created = engine(settings, passwords)
    try:
        async with created.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await created.dispose()


async def upgrade(settings: Settings, passwords: PasswordSource, roles: Roles, wait: float = WAIT_FOR_LOCK) -> None:
    """Bring the schema up to date as the owner role and grant the app's role; raises MigrationFailed."""
    await on_connection(lambda conn: _upgrade(conn, alembic_config(), roles, wait), settings, passwords)
{%- else -%}
def on_connection(work: Callable[[Connection], Any], settings: Settings, passwords: PasswordSource) -> Any:
    """Run ``work`` on one new connection that logs in like the app."""
    created = engine(settings, passwords)
    try:
        with created.connect() as conn:
            return work(conn)
    finally:
        created.dispose()


def upgrade(settings: Settings, passwords: PasswordSource, roles: Roles, wait: float = WAIT_FOR_LOCK) -> None:
    """Bring the schema up to date as the owner role and grant the app's role; raises MigrationFailed."""
    on_connection(lambda conn: _upgrade(conn, alembic_config(), roles, wait), settings, passwords)
{%- endif %}


def next_revision_id(config: Config) -> str:
    """Numbered revisions (0001, 0002, ...) read in order, unlike Alembic's random ids."""
    numbers = [int(s.revision) for s in ScriptDirectory.from_config(config).walk_revisions() if s.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def _roles(args: argparse.Namespace) -> Roles:
    return Roles(
        owner=getattr(args, "owner_role", None) or os.environ.get("DB_OWNER_ROLE") or None,
        app=getattr(args, "app_role", None) or os.environ.get("DB_APP_ROLE") or None,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m database.migrate", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def with_roles(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--owner-role", help="the role that owns the schema (default: $DB_OWNER_ROLE, else you)")
        sub.add_argument("--app-role", help="the app's runtime role, granted DML (default: $DB_APP_ROLE)")
        sub.add_argument("--wait", type=float, default=WAIT_FOR_LOCK, help="seconds to wait for another migration")
        sub.add_argument(
            "--lock-timeout", type=float, default=MIGRATION_LOCK_TIMEOUT, help="seconds a statement may wait for a lock"
        )
        sub.add_argument("--show-detail", action="store_true", help="print an error's DETAIL (it may quote rows)")
        return sub

    with_roles(commands.add_parser("upgrade", help="apply every pending migration as the owner; grant the app's role"))
    commands.add_parser("current", help="show the revision the database is at")
    commands.add_parser("check", help="exit 1 and name the revisions this code has and the database lacks")
    sql = commands.add_parser("sql", help="print the SQL of the revisions after one (Markdown; no database needed)")
    sql.add_argument("after", nargs="?", default="base", help="the revision the database is at (default: base)")
    commands.add_parser("history", help="list this code's migrations (no database needed)")
    revision = commands.add_parser("revision", help="write the next migration file under migrations/versions")
    revision.add_argument("-m", "--message", required=True, help="what the migration does")
{%- if driver == "sqlalchemy" %}
    revision.add_argument(
        "--autogenerate", action="store_true", help="write what differs between items/models.py and the database"
    )
    with_roles(revision)
{%- endif %}
    return parser


# ---------------------------------------------------------------- the commands that need the database
def _as_owner(conn: Connection, roles: Roles) -> None:
    """Read the version table as its owner where you may act as it; as yourself is fine too."""
    if roles.owner:
        try:
            conn.execute(text(f"SET ROLE {quoted(roles.owner)}"))
            conn.commit()
        except DBAPIError:
            conn.rollback()


def _upgrade_command(conn: Connection, config: Config, args: argparse.Namespace) -> int:
    _upgrade(conn, config, _roles(args), args.wait, args.show_detail, args.lock_timeout)
    return 0


def _check_command(conn: Connection, config: Config, args: argparse.Namespace) -> int:
    _as_owner(conn, _roles(args))
    current, pending = _pending(conn, config)
    for revision in pending:
        additive = "additive" if _is_additive(revision) else "not additive"
        print(f"pending: {Path(revision.path).name} ({revision.doc}; {additive})")
    print(f"the database is at {', '.join(current) or 'no revision'}; {len(pending)} pending")
    return 1 if pending else 0


def _current_command(conn: Connection, config: Config, args: argparse.Namespace) -> int:
    _as_owner(conn, _roles(args))
    config.attributes["connection"] = conn
    command.current(config)
    return 0
{%- if driver == "sqlalchemy" %}


def _autogenerate_command(conn: Connection, config: Config, args: argparse.Namespace) -> int:
    """A new migration from what differs between items/models.py and the database, brought up to date first."""
    _upgrade(conn, config, _roles(args), args.wait, args.show_detail, args.lock_timeout)
    _as_owner(conn, _roles(args))
    config.attributes["connection"] = conn
    command.revision(config, message=args.message, autogenerate=True, rev_id=next_revision_id(config))
    return 0
{%- endif %}


ONLINE: dict[str, Callable[[Connection, Config, argparse.Namespace], int]] = {
    "upgrade": _upgrade_command,
    "check": _check_command,
    "current": _current_command,
{%- if driver == "sqlalchemy" %}
    "revision": _autogenerate_command,  # only with --autogenerate: main writes a plain revision without one
{%- endif %}
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = alembic_config()
    try:
        if args.command == "history":
            command.history(config)
            return 0
        if args.command == "sql":
            sys.stdout.write(offline_sql(config, args.after))
            return 0
        if args.command == "revision"{{ " and not args.autogenerate" if driver == "sqlalchemy" }}:
            command.revision(config, message=args.message, rev_id=next_revision_id(config))
            return 0
        settings = load_settings()
        run = ONLINE[args.command]
        work = functools.partial(run, config=config, args=args)
        return {{ "asyncio.run(on_connection(work, settings, password_source(settings)))" if is_async else "on_connection(work, settings, password_source(settings))" }}
    except MigrationFailed as error:
        log.error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
