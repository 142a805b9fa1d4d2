{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""Lakebase access: settings -> credentials -> connection pool -> the schema's revision -> queries.

``database()`` returns this process's one pool, opening it on first use. The app changes no schema and takes
no lock: the deployer migrates before the code is deployed (``python -m database.migrate upgrade``, README
"Change the schema"). At start-up one query on Alembic's version table tells whether the database is at the
revision this code needs; until it is, every call answers ``NotMigrated`` (503, naming the pending revisions)
and asks again, so the app serves as soon as the migration ran, without a restart. If the database is
unreachable, the next call tries again. Code that must not serve the database it found (a newer migration
declared itself not additive) refuses for good, and ``problem()`` says why, until a newer version is deployed.
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
from .pooled import DatabaseBusy, DatabaseUnavailable, _sqlstate
from .schema import REVISIONS, MigrationFailed, NotMigrated, check_revisions, revisions_or_pending
from .settings import load_settings
from .unavailable import LOCK_WAIT, available, last_cause, unavailable

__all__ = [
    "Database",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "NotMigrated",
    "database",
    "healthy",
    "open_database",
    "opened",
    "problem",
    "said",
]

log = logging.getLogger(__name__)
_pool: Database | None = None  # opened, not yet found at the right revision
_database: Database | None = None  # opened and at the right revision: what the app serves with
_refused: MigrationFailed | NotMigrated | None = None
_opening = {{ "asyncio.Lock()" if is_async else "threading.Lock()" }}


{{ async_ }}def check_revision(db: Database, role: str) -> None:
    """One query: raises NotMigrated while revisions are pending, MigrationFailed when this code must not serve."""
    try:
        rows = {{ await_ }}db.fetch_all(REVISIONS)
    except DatabaseBusy:
        raise
    except Exception as error:  # noqa: BLE001 - what it means is decided by its SQLSTATE
        rows = revisions_or_pending(error, _sqlstate(error), role)
    warning = check_revisions(rows, role)
    if warning:
        log.warning("%s", warning)


{{ async_ }}def open_database() -> Database:
    """A new pool, checked to be at this code's revision (raises NotMigrated or MigrationFailed, pool closed)."""
    settings = load_settings()
    db = Database(settings, password_source(settings))
    {{ await_ }}db.open()
    try:
        {{ await_ }}check_revision(db, settings.user)
    except BaseException:
        {{ await_ }}db.close()
        raise
    return db


{{ async_ }}def database() -> Database:
    global _pool, _database, _refused
    if _database is None:
        {{ "async " if is_async }}with _opening:
            if isinstance(_refused, MigrationFailed):  # never serve a database this code must not serve: 503
                raise DatabaseUnavailable(str(_refused)) from _refused
            if _database is None:
                try:
                    settings = load_settings()
                    if _pool is None:
                        pool = Database(settings, password_source(settings))
                        {{ await_ }}pool.open()
                        _pool = pool
                    {{ await_ }}check_revision(_pool, settings.user)
                except (MigrationFailed, NotMigrated) as error:
                    if str(error) != str(_refused):
                        log.error("%s", error)  # said once per change, not per request
                    _refused = error
                    if isinstance(error, MigrationFailed):
                        raise DatabaseUnavailable(str(error)) from error
                    raise
                except DatabaseBusy:
                    raise
                except Exception as error:  # 503 with one line that says what to do, logged once per cause
                    raise unavailable(error) from error
                _database, _refused = _pool, None
                available()
    return _database


def opened() -> Database | None:
    """The pool once ``database()`` has opened it at this code's revision, else None: no wait, no I/O."""
    return _database


{{ async_ }}def healthy() -> bool:
    """True when the database answers a query now and is at this code's revision (for /healthz)."""
    try:
        ok = {% if is_async %}await (await database()).ping(){% else %}database().ping(){% endif %}
    except Exception:  # not even the pool could be opened, or the revision is not there yet
        return False
    if ok:
        available()  # the next outage is logged again
    return ok


def said(error: DatabaseBusy) -> str:
    """What a 503 says: why the database cannot be used and what to do (a pending or failed migration, a refused
    login, ...), never the driver's own text; or that it is busy."""
    if isinstance(error, NotMigrated | DatabaseUnavailable):
        return str(error)
    if error.__cause__ is not None and _sqlstate(error.__cause__) == "55P03":
        return LOCK_WAIT
    return "the database is busy: try again shortly"


def problem() -> str:
    """Why /healthz answers 503: the pending revisions, why this code must not serve, or what keeps it unreachable."""
    return str(_refused) if _refused is not None else last_cause() or "unavailable"
