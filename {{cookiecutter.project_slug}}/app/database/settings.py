"""Connection settings, read once from the environment the Apps runtime provides."""

import os
from dataclasses import dataclass

SCHEMA = "{{ cookiecutter.schema_name }}"
"""The schema this app owns; every connection puts it first on its search_path."""


class SettingsError(RuntimeError):
    """The environment lacks something the app needs to reach Lakebase."""


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    database: str
    user: str
    sslmode: str
    application_name: str
    lakebase_endpoint: str | None  # Autoscaling: projects/<p>/branches/<b>/endpoints/<e>
    local_password: str | None  # PGPASSWORD, only for local development
    pool_min_size: int
    pool_max_size: int
    pool_max_lifetime: float  # seconds before a connection is retired
    connect_timeout: float  # seconds to wait for a login or a free connection


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None


def _refuse_a_shared_database(env: dict[str, str], local_password: str | None) -> None:
    """A person logging in to a real Lakebase must name the database as their own.

    The app creates its schema as whoever logs in first. A person (PGUSER is an e-mail) doing that in a database a
    deployed app uses would own the schema, and the app's service principal could no longer use it.
    """
    user, database = env["PGUSER"], env["PGDATABASE"]
    if "@" not in user or local_password or env.get("LAKEBASE_OWN_DATABASE") == database:
        return
    raise SettingsError(
        f"{user} is about to create schema {SCHEMA} in Lakebase database {database!r} as themselves; a deployed app "
        "using that database could then not use it. Point PGDATABASE at a database of your own (README: Run locally "
        "against Lakebase) and confirm it with LAKEBASE_OWN_DATABASE=<that database>"
    )


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    missing = [name for name in ("PGHOST", "PGDATABASE", "PGUSER") if not env.get(name)]
    if missing:
        raise SettingsError(
            f"{', '.join(missing)} not set: on Databricks, declare the Lakebase resource in "
            "databricks.yml; locally, export the PG* variables (see README)"
        )
    local_password = env.get("PGPASSWORD") or None
    endpoint = env.get("LAKEBASE_ENDPOINT") or None
{%- if cookiecutter.lakebase == "autoscaling" %}
    if not (local_password or endpoint):
        raise SettingsError(
            "no way to log in: set LAKEBASE_ENDPOINT (app.yaml `valueFrom: postgres`), "
            "or PGPASSWORD for a local database"
        )
{%- else %}
    # Lakebase Provisioned: without PGPASSWORD the app logs in with its workspace OAuth token (credentials.py).
{%- endif %}
    _refuse_a_shared_database(env, local_password)
    pool_max_size = _int(env, "DB_POOL_MAX_SIZE", {{ cookiecutter.pool_max_size }})
    pool_min_size = min(_int(env, "DB_POOL_MIN_SIZE", 1), pool_max_size)
    if pool_max_size < 1 or pool_min_size < 0:
        raise SettingsError("DB_POOL_MAX_SIZE must be at least 1 and DB_POOL_MIN_SIZE at least 0")
    return Settings(
        host=env["PGHOST"],
        port=_int(env, "PGPORT", 5432),
        database=env["PGDATABASE"],
        user=env["PGUSER"],
        sslmode=env.get("PGSSLMODE", "require"),
        application_name=env.get("PGAPPNAME") or env.get("DATABRICKS_APP_NAME") or "{{ cookiecutter.app_name }}",
        lakebase_endpoint=endpoint,
        local_password=local_password,
        pool_min_size=pool_min_size,
        pool_max_size=pool_max_size,
        pool_max_lifetime=float(_int(env, "DB_POOL_MAX_LIFETIME", 45 * 60)),
        connect_timeout=float(_int(env, "DB_CONNECT_TIMEOUT", 10)),
    )
