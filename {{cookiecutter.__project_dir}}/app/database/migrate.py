{%- set driver = cookiecutter.driver -%}
{%- set is_async = driver == "asyncpg" -%}
"""Versioned, forward-only schema migrations (Alembic), run at every start-up and from a shell.

From app/, with the same environment as the app (PG*, and the Lakebase credential or PGPASSWORD):

    python -m database.migrate upgrade       # apply what is not applied yet (what every start-up does)
    python -m database.migrate current       # the revision the database is at
    python -m database.migrate history       # every migration this code has
    python -m database.migrate revision -m "add a due date"{{ " [--autogenerate]" if driver == "sqlalchemy" }}

Alembic reaches PostgreSQL through SQLAlchemy's dialect for this app's driver, and each login
goes through credentials.py like the pool's. Many instances may start at once: a session
advisory lock lets one migrate while the others wait, then find nothing left to do.
"""

import argparse
{%- if is_async %}
import asyncio
{%- endif %}
import contextlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
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
    ACCESS,
    BEFORE_ROW_SECURITY,
    CREATE,
    LOCK,
    NOT_ADDITIVE,
    UNLOCK,
    UNPROTECTED,
    VERSION_TABLE,
    MigrationFailed,
    check_access,
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


def _serve_older_code(conn: Connection, script: ScriptDirectory, newer: list[str]) -> None:
    """An instance of an older release (a rolling deploy) meets a database migrated by a newer one.

    Migrations are additive unless they declare ``additive = False``; the newest such revision is the
    comment on Alembic's version table (schema.py, NOT_ADDITIVE), so this code, which has never seen it, can tell.
    """
    breaking = conn.execute(text(NOT_ADDITIVE), {"table": f"{SCHEMA}.{VERSION_TABLE}"}).scalar()
    conn.commit()
    head = script.get_current_head()
    if breaking and not _known(script, breaking):
        raise MigrationFailed(
            f"the database is at revision {', '.join(newer)}, newer than this code (head {head}), and "
            f"migration {breaking} declared itself not additive: this version must not serve; deploy the new one"
        )
    log.warning(
        "the database is at revision %s, newer than this code (head %s): serving, as its migrations are additive",
        ", ".join(newer),
        head,
    )


def _database_error(error: Exception) -> tuple[str, str]:
    """The SQLSTATE and the database's own words (with its DETAIL), without SQLAlchemy's wrapping."""
    orig = getattr(error, "orig", None)
    if orig is None:
        return "none", f"{type(error).__name__}: {error}"
    native = orig.__cause__ or orig  # asyncpg's own exception, under SQLAlchemy's adapter
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or getattr(native, "sqlstate", None)
    reason = str(orig).strip()
    detail = getattr(native, "detail", None)
    if detail and detail not in reason:
        reason += f"\nDETAIL:  {detail}"
    return sqlstate or "none", reason


def _upgrade(conn: Connection, config: Config) -> None:
    """Apply every pending migration, each in its own transaction, under the advisory lock."""
    check_access(conn.execute(text(ACCESS), {"schema": SCHEMA}).mappings().one())
    conn.execute(text(LOCK))  # waits while another instance migrates
    try:
        conn.execute(text(CREATE))
        versions = {"version_table": VERSION_TABLE, "version_table_schema": SCHEMA}
        current = MigrationContext.configure(conn, opts=versions).get_current_heads()
        conn.commit()  # Alembic must start outside a transaction to commit each migration on its own
        script = ScriptDirectory.from_config(config)
        newer = [revision for revision in current if not _known(script, revision)]
        if newer:
            _serve_older_code(conn, script, newer)
            return
        lower = current[0] if current else "base"
        pending = [s.revision for s in reversed(list(script.iterate_revisions("heads", lower)))]
        applied: list[str] = []

        def record(ctx: MigrationContext, step: Any, **kw: Any) -> None:  # inside the migration's transaction
            if step.up_revision_id not in BEFORE_ROW_SECURITY:
                tables = {"schema": SCHEMA, "version_table": VERSION_TABLE}
                check_row_security(list(ctx.connection.execute(text(UNPROTECTED), tables).scalars()))
            if getattr(step.up_revision.module, "additive", True) is False:
                ctx.connection.execute(text(mark_not_additive(step.up_revision_id)))
            applied.append(step.up_revision_id)

        config.attributes.update(connection=conn, on_version_apply=record)
        try:
            command.upgrade(config, "heads")
        except Exception as error:
            if isinstance(error, DBAPIError) and error.connection_invalidated:
                raise  # the connection was lost, not the migration wrong: the next start-up tries again
            failed = _describe(script, pending[len(applied)]) if len(applied) < len(pending) else "?"
            sqlstate, reason = _database_error(error)
            # The database's words (its DETAIL may quote rows: other users' data) go to the app log only;
            # the exception, which /healthz shows, names the migration and no more.
            log.error("migration %s failed (SQLSTATE %s): %s", failed, sqlstate, reason)
            raise MigrationFailed(
                f"migration {failed} failed and was rolled back; the app log has the database's error"
            ) from error
        for revision in applied:
            log.info("applied migration %s", _describe(script, revision))
    finally:
        with contextlib.suppress(DBAPIError):  # a lost connection released the lock with its session
            conn.rollback()
            conn.execute(text(UNLOCK))
            conn.commit()


{% if is_async -%}
async def on_connection(work: Callable[[Connection], Any], settings: Settings, passwords: PasswordSource) -> Any:
    """Run ``work`` (synchronous, as Alembic is) on one new connection that logs in like the app."""
    created = engine(settings, passwords)
    try:
        async with created.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await created.dispose()


async def upgrade(settings: Settings, passwords: PasswordSource) -> None:
    """Bring the schema up to date (start-up); raises MigrationFailed when a migration fails."""
    await on_connection(lambda conn: _upgrade(conn, alembic_config()), settings, passwords)
{%- else -%}
def on_connection(work: Callable[[Connection], Any], settings: Settings, passwords: PasswordSource) -> Any:
    """Run ``work`` on one new connection that logs in like the app."""
    created = engine(settings, passwords)
    try:
        with created.connect() as conn:
            return work(conn)
    finally:
        created.dispose()


def upgrade(settings: Settings, passwords: PasswordSource) -> None:
    """Bring the schema up to date (start-up); raises MigrationFailed when a migration fails."""
    on_connection(lambda conn: _upgrade(conn, alembic_config()), settings, passwords)
{%- endif %}


def next_revision_id(config: Config) -> str:
    """Numbered revisions (0001, 0002, ...) read in order, unlike Alembic's random ids."""
    numbers = [int(s.revision) for s in ScriptDirectory.from_config(config).walk_revisions() if s.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m database.migrate", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="apply every migration not applied yet, under the advisory lock")
    commands.add_parser("current", help="show the revision the database is at")
    commands.add_parser("history", help="list this code's migrations (no database needed)")
    revision = commands.add_parser("revision", help="write the next migration file under migrations/versions")
    revision.add_argument("-m", "--message", required=True, help="what the migration does")
{%- if driver == "sqlalchemy" %}
    revision.add_argument(
        "--autogenerate", action="store_true", help="write what differs between items/models.py and the database"
    )
{%- endif %}
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = alembic_config()
    if args.command == "history":
        command.history(config)
        return 0
    if args.command == "revision" and not getattr(args, "autogenerate", False):
        command.revision(config, message=args.message, rev_id=next_revision_id(config))
        return 0

    def work(conn: Connection) -> None:
        if args.command != "current":  # autogenerate compares the models with an up-to-date database
            _upgrade(conn, config)
        config.attributes["connection"] = conn
        if args.command == "current":
            command.current(config)
        elif args.command == "revision":
            command.revision(config, message=args.message, autogenerate=True, rev_id=next_revision_id(config))

    settings = load_settings()
    try:
        {{ "asyncio.run(on_connection(work, settings, password_source(settings)))" if is_async else "on_connection(work, settings, password_source(settings))" }}
    except MigrationFailed as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
