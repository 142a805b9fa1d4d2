"""Why the database cannot be used, in one line that says what to do: every request is answered 503 with it (never
the driver's own text), and the log says it once per cause, with the driver's message, not a traceback per request.
"""

import logging
import ssl

from .pooled import DatabaseUnavailable
from .settings import SettingsError

log = logging.getLogger(__name__)

CERTIFICATE = (
    "the database's TLS certificate is not trusted (certificate verify failed): point PGSSLROOTCERT at the CA "
    "certificate that signed it; only if you cannot, DB_TLS_VERIFY=off (encrypted, not verified; docs/tls.md)"
)
HOST_NAME = "the database's TLS certificate does not name PGHOST: set PGHOST to the host name in the certificate"
LOGIN = (
    "the database refused the login of PGUSER (password authentication failed): on Databricks, declare the Lakebase "
    "resource for this app in databricks.yml and deploy, so that its role exists; locally, PGUSER must be the "
    "identity the password or token is for"
)
NO_DATABASE = "the database PGDATABASE names does not exist (or PGUSER may not connect to it): check PGDATABASE"
UNREACHABLE = "cannot reach the database at PGHOST:PGPORT: check them, and that the Lakebase compute is running"
# lock_not_available: lock_timeout ended a wait for a lock someone else held (the app itself takes none)
LOCK_WAIT = (
    "the database is busy: a lock on its tables was held past lock_timeout (a schema change or another long "
    "transaction): try again shortly"
)
CREDENTIAL = (
    "could not mint a Lakebase credential with databricks-sdk: check the app's Lakebase resource in databricks.yml "
    "(and, locally, DATABRICKS_CONFIG_PROFILE)"
)


_cause: str | None = None  # the last cause logged, so that one cause is logged once


def _sqlstate(error: BaseException) -> str:
    for candidate in (error, getattr(error, "orig", None), error.__cause__):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return ""


def explain(error: BaseException) -> str:
    """The one line for an error met while opening the database or reaching it."""
    if isinstance(error, DatabaseUnavailable | SettingsError):
        return str(error)  # already says what to do
    chain, seen = [], error
    while seen is not None and len(chain) < 8:  # the driver's error may sit under SQLAlchemy's or the pool's
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or "certificate verify failed" in text:
        return HOST_NAME if "hostname mismatch" in text or "does not match host name" in text else CERTIFICATE
    if "does not match host name" in text or "hostname mismatch" in text:
        return HOST_NAME
    codes = {_sqlstate(e) for e in chain}
    if "28P01" in codes or "password authentication failed" in text:
        return LOGIN
    if "3D000" in codes or ('database "' in text and "does not exist" in text):
        return NO_DATABASE
    if any(type(e).__module__.startswith("databricks.sdk") for e in chain):
        return CREDENTIAL
    return UNREACHABLE


def unavailable(error: BaseException) -> DatabaseUnavailable:
    """The DatabaseUnavailable to raise for `error`; logs its line (and the driver's own message) once per cause."""
    global _cause
    line = explain(error)
    if line != _cause:
        _cause = line
        log.error("database unavailable: %s (%s: %s)", line, type(error).__name__, str(error).strip()[:500])
    return error if isinstance(error, DatabaseUnavailable) else DatabaseUnavailable(line)


def last_cause() -> str | None:
    """The line of the outage going on, if any (for /healthz)."""
    return _cause


def available() -> None:
    """The database answered: the next outage is logged again, whatever its cause."""
    global _cause
    _cause = None
