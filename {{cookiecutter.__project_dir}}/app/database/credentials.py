"""Database passwords for Lakebase.

Lakebase does not inject PGPASSWORD. On Databricks the app mints a short-lived
OAuth database credential with databricks-sdk, as its own service principal, and
hands the current one to every NEW connection. Open connections keep working
after the token expires (it is checked only at login), so the pool is never
rebuilt on a timer. Tokens are never written or logged.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from .settings import Settings

log = logging.getLogger(__name__)

Mint = Callable[[], tuple[str, float]]
"""Returns a new token and the epoch second the service says it expires."""
Conn = TypeVar("Conn")


class PasswordSource(Protocol):
    def password(self) -> str: ...

    async def password_async(self) -> str: ...

    def invalidate(self, password: str) -> None: ...


class StaticPassword:
    """PGPASSWORD, for a local PostgreSQL during development."""

    def __init__(self, password: str) -> None:
        self._password = password

    def password(self) -> str:
        return self._password

    async def password_async(self) -> str:
        return self._password

    def invalidate(self, password: str) -> None:
        pass  # a fixed password cannot be renewed


class RefreshingToken:
    """A minted token, cached and replaced before the expiry the service states."""

    def __init__(self, mint: Mint, clock: Callable[[], float] = time.time) -> None:
        self._mint = mint
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.mints = 0

    def password(self) -> str:
        with self._lock:  # one mint at a time; waiting threads reuse its result
            now = self._clock()
            if self._token is None or now >= self._refresh_at:
                token, expires_at = self._mint()
                lifetime = max(expires_at - now, 0.0)
                # Renew with a fifth of the lifetime left (at most 5 minutes early), so a
                # login never races the expiry, whatever TTL the workspace grants.
                self._refresh_at = expires_at - min(lifetime * 0.2, 300.0)
                self._token = token
                self.mints += 1
                log.info("minted a Lakebase database credential, valid for %.0f s", lifetime)
            return self._token

    async def password_async(self) -> str:
        # The SDK call blocks; run it off the event loop. The lock keeps it single.
        return await asyncio.to_thread(self.password)

    def invalidate(self, password: str) -> None:
        """Forget a token the server refused (revoked or expired early), unless already replaced."""
        with self._lock:
            if self._token == password:
                self._token = None


def login_refused(error: BaseException) -> bool:
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return code in ("28P01", "28000") or "password authentication failed" in str(error)


def login(connect: Callable[[str], Conn], passwords: PasswordSource) -> Conn:
    """Open a connection with the current token; if the server refuses it, mint a new one and try once more."""
    password = passwords.password()
    try:
        return connect(password)
    except Exception as error:
        if not login_refused(error):
            raise
        passwords.invalidate(password)
        log.warning("the database refused the cached credential; minting a new one")
        return connect(passwords.password())


async def login_async(connect: Callable[[str], Awaitable[Conn]], passwords: PasswordSource) -> Conn:
    """The async twin of ``login``."""
    password = await passwords.password_async()
    try:
        return await connect(password)
    except Exception as error:
        if not login_refused(error):
            raise
        passwords.invalidate(password)
        log.warning("the database refused the cached credential; minting a new one")
        return await connect(await passwords.password_async())


{% if cookiecutter.__flavour == "autoscaling" -%}
def _autoscaling_mint(endpoint: str) -> Mint:
    from databricks.sdk import WorkspaceClient

    workspace = WorkspaceClient()  # the app's service principal, from DATABRICKS_CLIENT_ID/SECRET

    def mint() -> tuple[str, float]:
        credential = workspace.postgres.generate_database_credential(endpoint=endpoint)
        if not credential.token or credential.expire_time is None:
            raise RuntimeError("the workspace returned an incomplete database credential")
        return credential.token, float(credential.expire_time.ToSeconds())

    return mint
{%- else -%}
def _provisioned_mint() -> Mint:
    """The app's own workspace OAuth token is its Lakebase Provisioned password.

    As databricks/app-templates' flask-database-app does: no instance name is needed, which matters because
    `valueFrom: database` yields the instance's HOST, not its name (Apps docs, valueFrom table), and
    generate_database_credential(instance_names=[<host>]) fails. PGUSER is the service principal's client id.
    """
    from databricks.sdk import WorkspaceClient

    workspace = WorkspaceClient()  # the app's service principal, from DATABRICKS_CLIENT_ID/SECRET
    handed_out: str | None = None

    def mint() -> tuple[str, float]:
        nonlocal workspace, handed_out
        token = workspace.config.oauth_token()  # cached by the SDK, renewed shortly before it expires
        if token.access_token == handed_out:
            # Asked again for the token we already gave out: the server refused it, or it is near its expiry.
            # A new client runs a new OAuth flow instead of returning the SDK's cached token.
            workspace = WorkspaceClient()
            token = workspace.config.oauth_token()
        if not token.access_token or token.expiry is None:
            raise RuntimeError("the workspace returned an OAuth token without an expiry")
        handed_out = token.access_token
        return token.access_token, token.expiry.timestamp()

    return mint
{%- endif %}


def password_source(settings: Settings) -> PasswordSource:
    if settings.local_password:
        return StaticPassword(settings.local_password)
{%- if cookiecutter.__flavour == "autoscaling" %}
    if not settings.lakebase_endpoint:
        raise RuntimeError("LAKEBASE_ENDPOINT is not set: add `valueFrom: postgres` to app.yaml")
    return RefreshingToken(_autoscaling_mint(settings.lakebase_endpoint))
{%- else %}
    return RefreshingToken(_provisioned_mint())
{%- endif %}
