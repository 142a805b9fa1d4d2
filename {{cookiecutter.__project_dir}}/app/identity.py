"""Who is asking: the one rule every page and API of this app follows.

On Databricks the Apps proxy names the signed-in user in ``X-Forwarded-Email`` on every request
(https://docs.databricks.com/aws/en/dev-tools/databricks-apps/http-headers). A request without it
did not come through the proxy, so it is refused. The Apps runtime sets ``DATABRICKS_APP_NAME`` in
every app (https://docs.databricks.com/aws/en/dev-tools/databricks-apps/system-env).

Local mode is switched on only by ``./run-local.sh`` (local/run.py): it binds the app to 127.0.0.1, says so in
``LOCAL_RUN_BIND`` (``127.0.0.1:<port>``) and gives this run a random key in ``LOCAL_RUN_KEY``. Only then, and
never on Databricks, does a request act as ``LOCAL_USER`` (or as the user its header names), and only if it
holds the key: the address the runner prints carries it once (``?local_run_key=...``), the app answers with a
cookie (``local_sign_in``) and the browser sends that cookie from then on. Anyone else on this machine can reach
127.0.0.1, but not the key. Anywhere else, a missing header is refused as on Databricks: an app started by hand
outside the Apps runtime trusts nobody by default.

In local mode the app also answers only to its own address: a page of another site whose name is re-pointed at
127.0.0.1 (DNS rebinding) is same-origin with itself and sends its own name as ``Host``, so any ``Host`` but
127.0.0.1, localhost or [::1] with the app's port is refused (``wrong_host``). On Databricks the proxy picks the host.
"""

import hmac
import logging
import os
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

LOCAL_USER = "local.user@example.com"
HEADER = "X-Forwarded-Email"
KEY_PARAM = "local_run_key"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
WRONG_HOST = "refused: run locally, this app answers only at http://127.0.0.1:<port> or http://localhost:<port>"
NO_KEY = "not signed in: open the address ./run-local.sh printed (it carries this run's key)"

log = logging.getLogger(__name__)
_warned = False


class NotSignedIn(PermissionError):
    """A request without the signed-in user's header (or, run locally, without this run's key)."""


def on_databricks() -> bool:
    return bool(os.environ.get("DATABRICKS_APP_NAME"))


def _local_run() -> tuple[int, str] | None:
    """(port, key) of a local run: not on Databricks, bound to loopback only, with a key; else None."""
    host, _, port = os.environ.get("LOCAL_RUN_BIND", "").rpartition(":")
    key = os.environ.get("LOCAL_RUN_KEY", "")
    if on_databricks() or host not in LOOPBACK or not port.isdigit() or len(key) < 16:
        return None
    return int(port), key


def local_port() -> int | None:
    """The port of a local run (``./run-local.sh``), or None."""
    local = _local_run()
    return local[0] if local else None


def wrong_host(headers: Mapping[str, str]) -> bool:
    """Run locally: True when ``Host`` is not this machine's own name with the app's port (refuse the request)."""
    port = local_port()
    if port is None:
        return False
    host = (headers.get("Host") or "").lower()
    return host not in {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def _holds_the_key(headers: Mapping[str, str], key: str, port: int, offered: str | None) -> bool:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(headers.get("Cookie") or "")
    except CookieError:
        pass
    kept = cookies.get(f"local_run_{port}")
    return any(hmac.compare_digest(given, key) for given in (offered, kept.value if kept else None) if given)


def local_sign_in(path: str, query: str) -> tuple[str, str] | None:
    """Run locally, for a request whose query carries this run's key: where to send the browser (the same path,
    without the key) and the cookie that holds the key from then on (``Set-Cookie``). Else None."""
    local = _local_run()
    offered = parse_qs(query).get(KEY_PARAM, [""])[0]
    if local is None or not offered or not hmac.compare_digest(offered, local[1]):
        return None
    port, key = local
    return path, f"local_run_{port}={key}; Path=/; HttpOnly; SameSite=Strict"


def current_user(headers: Mapping[str, str], offered_key: str | None = None) -> str:
    """The signed-in user's e-mail, lower-cased; ``headers`` must look names up case-insensitively. Run locally,
    the run's key must come with the request (its cookie, or ``offered_key``: Streamlit's page sets no cookie)."""
    global _warned
    email = (headers.get(HEADER) or "").strip().lower()
    local = _local_run()
    if local is None:
        if email:
            return email
        elsewhere = "" if on_databricks() else "; to run it on this machine, start it with ./run-local.sh"
        raise NotSignedIn(f"not signed in: requests must come through the Databricks Apps proxy ({HEADER}){elsewhere}")
    if not _holds_the_key(headers, local[1], local[0], offered_key):
        raise NotSignedIn(NO_KEY)
    if email:
        return email
    if not _warned:
        _warned = True
        log.warning("no %s header: running locally, so requests act as %s", HEADER, LOCAL_USER)
    return LOCAL_USER
