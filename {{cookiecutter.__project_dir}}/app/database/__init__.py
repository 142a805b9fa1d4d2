{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""Lakebase access: settings -> credentials -> connection pool -> schema -> queries.

``database()`` returns this process's one pool, opening it (and bootstrapping
the schema) on first use. If the database is unreachable then, the next call
tries again, so the app recovers without a restart.
"""

{% if is_async -%}
import asyncio
{%- else -%}
import threading
{%- endif %}

from .connection import Database
from .credentials import password_source
from .schema import bootstrap
from .settings import load_settings

__all__ = ["Database", "database", "healthy", "open_database"]

_database: Database | None = None
_opening = {{ "asyncio.Lock()" if is_async else "threading.Lock()" }}


{{ async_ }}def open_database() -> Database:
    settings = load_settings()
    db = Database(settings, password_source(settings))
    {{ await_ }}db.open()
    try:
        {{ await_ }}bootstrap(db)
    except BaseException:
        {{ await_ }}db.close()
        raise
    return db


{{ async_ }}def database() -> Database:
    global _database
    if _database is None:
        {{ "async " if is_async }}with _opening:
            if _database is None:
                _database = {{ await_ }}open_database()
    return _database


{{ async_ }}def healthy() -> bool:
    """True when the database answers a query now (for /healthz)."""
    try:
        return {% if is_async %}await (await database()).ping(){% else %}database().ping(){% endif %}
    except Exception:  # not even the pool could be opened
        return False
