{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""Lakebase access: settings -> credentials -> connection pool -> migrations -> queries.

``database()`` returns this process's one pool, opening it (and migrating the
schema) on first use. If the database is unreachable then, the next call tries
again, so the app recovers without a restart. A migration that fails is not
retried: the process refuses to serve, and ``problem()`` says why, until a fixed
version is deployed.
"""

{% if is_async -%}
import asyncio
import logging
{%- else -%}
import logging
import threading
{%- endif %}

from .connection import Database
from .credentials import password_source
from .pooled import DatabaseBusy
from .schema import HAS_VERSIONS, VERSION_TABLE, VERSIONS, MigrationFailed, is_current
from .settings import SCHEMA, load_settings
from .unavailable import DatabaseUnavailable, available, last_cause, unavailable

__all__ = ["Database", "DatabaseBusy", "DatabaseUnavailable", "database", "healthy", "open_database", "problem"]

log = logging.getLogger(__name__)
_database: Database | None = None
_failed: MigrationFailed | None = None
_opening = {{ "asyncio.Lock()" if is_async else "threading.Lock()" }}


{{ async_ }}def open_database() -> Database:
    settings = load_settings()
    passwords = password_source(settings)
    db = Database(settings, passwords)
    {{ await_ }}db.open()
    try:
        if not {{ await_ }}up_to_date(db):
            from .migrate import upgrade  # only now: SQLAlchemy and Alembic take a while to import

            {{ await_ }}upgrade(settings, passwords)
    except BaseException:
        {{ await_ }}db.close()
        raise
    return db


{{ async_ }}def up_to_date(db: Database) -> bool:
    """True when the database is at this code's newest migration: start-up then loads neither SQLAlchemy nor Alembic."""
    try:
        present = {{ await_ }}db.fetch_one(HAS_VERSIONS, {"table": f"{SCHEMA}.{VERSION_TABLE}"})
        return bool(present and present["present"]) and is_current({{ await_ }}db.fetch_all(VERSIONS))
    except Exception:  # whatever it is, the full path (access check, lock, Alembic) says it better
        return False


{{ async_ }}def database() -> Database:
    global _database, _failed
    if _database is None:
        {{ "async " if is_async }}with _opening:
            if _failed is not None:  # never serve against a schema whose migration failed
                raise DatabaseUnavailable(str(_failed)) from _failed
            if _database is None:
                try:
                    _database = {{ await_ }}open_database()
                except MigrationFailed as error:
                    _failed = error
                    log.error("%s; not serving until a fixed version is deployed", error)
                    raise DatabaseUnavailable(str(error)) from error
                except Exception as error:  # 503 with one line that says what to do; logged once per cause
                    raise unavailable(error) from error
                available()
    return _database


{{ async_ }}def healthy() -> bool:
    """True when the database answers a query now (for /healthz)."""
    try:
        return {% if is_async %}await (await database()).ping(){% else %}database().ping(){% endif %}
    except Exception:  # not even the pool could be opened
        return False


def problem() -> str:
    """Why /healthz answers 503: the failed migration and the database's error, or what keeps it unreachable."""
    return str(_failed) if _failed is not None else last_cause() or "unavailable"
