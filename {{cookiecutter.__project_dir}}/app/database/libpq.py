"""How a libpq driver logs in (psycopg 3, psycopg2 and SQLAlchemy's psycopg dialects): one place for all of them."""

from typing import Any

from .settings import SCHEMA, Settings


def connect_args(s: Settings) -> dict[str, Any]:
    """Keyword arguments of a libpq connection to the app's database; the password is added per login."""
    return {
        "host": s.host,
        "port": s.port,
        "dbname": s.database,
        "user": s.user,
        "sslmode": s.sslmode,
        "application_name": s.application_name,
        "connect_timeout": max(1, round(s.connect_timeout)),
        "options": f"-c search_path={SCHEMA}",  # unqualified names are the app's schema
    }
