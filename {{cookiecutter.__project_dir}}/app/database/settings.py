"""Connection settings, read once from the environment the Apps runtime provides."""

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

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
    sslmode: str  # verify-full unless DB_TLS_VERIFY=off (see README: TLS)
    sslrootcert: str  # "system" (the OS's CA store) or a CA file (PGSSLROOTCERT)
    application_name: str
    lakebase_endpoint: str | None  # Autoscaling: projects/<p>/branches/<b>/endpoints/<e>
    local_password: str | None  # PGPASSWORD, only for local development
    pool_min_size: int
    pool_max_size: int
    pool_max_lifetime: float  # seconds before a connection is retired
    connect_timeout: float  # seconds to wait for a login or a free connection
    statement_timeout_ms: int  # the app's queries; migrations set their own (migrate.py)
    lock_timeout_ms: int


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None


UNENCRYPTED = ("disable", "allow", "prefer")  # libpq modes that may log in without TLS


def _sslmode(env: dict[str, str]) -> str:
    """The Apps runtime asks for `require` (encrypted, not verified); the app verifies the certificate chain and the
    host name too (`verify-full`) unless DB_TLS_VERIFY=off. On Databricks nothing weaker than `require` is taken: the
    password is the app's OAuth token, and `prefer` or `allow` would send it in clear text to whoever answers without
    TLS. Off Databricks (a local PostgreSQL) any other mode is taken as written: the local runner decides."""
    sslmode = env.get("PGSSLMODE") or "require"
    verify = env.get("DB_TLS_VERIFY", "full")
    if verify not in ("full", "off"):
        raise SettingsError(f"DB_TLS_VERIFY={verify!r}: use full (the default) or off")
    if sslmode in UNENCRYPTED and env.get("DATABRICKS_APP_NAME"):  # set in every app (identity.py says where)
        raise SettingsError(
            f"PGSSLMODE={sslmode} on Databricks: the app would send its OAuth token over a connection that may not be "
            "encrypted. Remove PGSSLMODE from app.yaml (the runtime's require is verified as verify-full), or set "
            "require, verify-ca or verify-full"
        )
    return "verify-full" if sslmode == "require" and verify == "full" else sslmode


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
{%- if cookiecutter.__flavour == "autoscaling" %}
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
        sslmode=_sslmode(env),
        sslrootcert=env.get("PGSSLROOTCERT") or "system",
        application_name=env.get("PGAPPNAME") or env.get("DATABRICKS_APP_NAME") or "{{ cookiecutter.app_name }}",
        lakebase_endpoint=endpoint,
        local_password=local_password,
        pool_min_size=pool_min_size,
        pool_max_size=pool_max_size,
        pool_max_lifetime=float(_int(env, "DB_POOL_MAX_LIFETIME", 45 * 60)),
        connect_timeout=float(_int(env, "DB_CONNECT_TIMEOUT", 10)),
        statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 5000),
        lock_timeout_ms=_int(env, "DB_LOCK_TIMEOUT_MS", 2000),
    )


def session_settings(s: Settings, *, migration: bool = False) -> dict[str, str]:
    """What every connection sets at login: the app's schema first on its search_path, and how long one query may
    run and wait for a lock. Migrations set their own: no limit (0), so an instance waits for another's migration
    on the advisory lock and a long backfill finishes, whatever a role or database default says."""
    return {
        "search_path": SCHEMA,
        "statement_timeout": "0" if migration else str(s.statement_timeout_ms),
        "lock_timeout": "0" if migration else str(s.lock_timeout_ms),
    }


def ca_file(s: Settings) -> str:
    """The CA certificates a verified connection trusts: PGSSLROOTCERT, else the OS's store, else certifi's.

    libpq's own `sslrootcert=system` is not used: it needs libpq 16, and the OpenSSL inside the psycopg binary
    wheels looks for the system store in its build directory (/usr/lib/psycopg-openssl), not the OS's. Python's
    ssl module knows the OS's bundle (and honours SSL_CERT_FILE), so its path is handed to libpq.
    """
    if s.sslrootcert != "system":
        return s.sslrootcert
    found = ssl.get_default_verify_paths().cafile or _certifi_bundle()
    if not found or not Path(found).is_file():
        raise SettingsError(
            "no CA certificate bundle found to verify Lakebase's certificate: install the OS's CA certificates "
            "(ca-certificates), point PGSSLROOTCERT or SSL_CERT_FILE at a bundle, or set DB_TLS_VERIFY=off"
        )
    return found


def _certifi_bundle() -> str | None:
    """Mozilla's CA bundle from certifi, which databricks-sdk brings in (through requests): the fallback where
    Python finds no OS bundle, so a runtime without one still verifies instead of failing every login."""
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()
{%- if cookiecutter.driver == "asyncpg" %}


def asyncpg_ssl(s: Settings) -> ssl.SSLContext | str | None:
    """asyncpg's `ssl=`: for verify-full a context that checks the chain (against the OS CA store, or the file in
    PGSSLROOTCERT) and the host name; other modes as asyncpg reads them."""
    if s.sslmode == "disable":
        return None
    if s.sslmode != "verify-full":
        return s.sslmode
    return ssl.create_default_context(cafile=ca_file(s))
{%- endif %}
