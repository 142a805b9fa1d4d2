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
    lakebase_instance: str | None  # Provisioned: the instance name
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
    instance = env.get("LAKEBASE_INSTANCE") or None
    if not (local_password or endpoint or instance):
        raise SettingsError(
            "no way to log in: set LAKEBASE_ENDPOINT (Autoscaling) or LAKEBASE_INSTANCE "
            "(Provisioned) through app.yaml valueFrom, or PGPASSWORD for a local database"
        )
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
        lakebase_instance=instance,
        local_password=local_password,
        pool_min_size=pool_min_size,
        pool_max_size=pool_max_size,
        pool_max_lifetime=float(_int(env, "DB_POOL_MAX_LIFETIME", 45 * 60)),
        connect_timeout=float(_int(env, "DB_CONNECT_TIMEOUT", 10)),
    )
