"""How a libpq driver logs in (psycopg 3, psycopg2 and SQLAlchemy's psycopg dialects): one place for all of them."""

from typing import Any

from .settings import Settings, ca_file, session_settings


def connect_args(s: Settings, *, migration: bool = False) -> dict[str, Any]:
    """Keyword arguments of a libpq connection to the app's database; the password is added per login."""
    params = {
        "host": s.host,
        "port": s.port,
        "dbname": s.database,
        "user": s.user,
        "sslmode": s.sslmode,
        "application_name": s.application_name,
        "connect_timeout": max(1, round(s.connect_timeout)),
        # the app's schema first on the search_path, and the query and lock timeouts
        "options": " ".join(f"-c {name}={value}" for name, value in session_settings(s, migration=migration).items()),
    }
    if s.sslmode in ("verify-ca", "verify-full"):
        params["sslrootcert"] = ca_file(s)
    return params
