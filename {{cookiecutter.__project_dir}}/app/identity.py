"""Who is asking: the one rule every page and API of this app follows.

On Databricks the Apps proxy names the signed-in user in ``X-Forwarded-Email`` on every request
(https://docs.databricks.com/aws/en/dev-tools/databricks-apps/http-headers). A request without it
did not come through the proxy, so it is refused. The Apps runtime sets ``DATABRICKS_APP_NAME`` in
every app (https://docs.databricks.com/aws/en/dev-tools/databricks-apps/system-env).

Local mode is switched on only by ``./run-local.sh`` (local/run.py): it binds the app to 127.0.0.1 and says so
in ``LOCAL_RUN_BIND`` (``127.0.0.1:<port>``). Only then, and never on Databricks, does a request without the
header act as ``LOCAL_USER`` (the log says so once). Anywhere else, a missing header is refused as on Databricks:
an app started by hand outside the Apps runtime trusts nobody by default.

In local mode the app also answers only to its own address: a page of another site whose name is re-pointed at
127.0.0.1 (DNS rebinding) is same-origin with itself and sends its own name as ``Host``, so any ``Host`` but
127.0.0.1, localhost or [::1] with the app's port is refused (``wrong_host``). On Databricks the proxy picks the host.
"""

import logging
import os
from collections.abc import Mapping

LOCAL_USER = "local.user@example.com"
HEADER = "X-Forwarded-Email"
LOCAL_SWITCH = "LOCAL_RUN_BIND"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
WRONG_HOST = "refused: run locally, this app answers only at http://127.0.0.1:<port> or http://localhost:<port>"

log = logging.getLogger(__name__)
_warned = False


class NotSignedIn(PermissionError):
    """A request without the signed-in user's header, outside local mode."""


def on_databricks() -> bool:
    return bool(os.environ.get("DATABRICKS_APP_NAME"))


def local_port() -> int | None:
    """The port of a local run (``./run-local.sh``), or None: not on Databricks, and bound to loopback only."""
    bind = os.environ.get(LOCAL_SWITCH, "")
    host, _, port = bind.rpartition(":")
    if on_databricks() or host not in LOOPBACK or not port.isdigit():
        return None
    return int(port)


def wrong_host(headers: Mapping[str, str]) -> bool:
    """Run locally: True when ``Host`` is not this machine's own name with the app's port (refuse the request)."""
    port = local_port()
    if port is None:
        return False
    host = (headers.get("Host") or "").lower()
    return host not in {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def current_user(headers: Mapping[str, str]) -> str:
    """The signed-in user's e-mail, lower-cased; ``headers`` must look names up case-insensitively."""
    global _warned
    email = (headers.get(HEADER) or "").strip().lower()
    if email:
        return email
    if local_port() is None:
        elsewhere = "" if on_databricks() else "; to run it on this machine, start it with ./run-local.sh"
        raise NotSignedIn(f"not signed in: requests must come through the Databricks Apps proxy ({HEADER}){elsewhere}")
    if not _warned:
        _warned = True
        log.warning("no %s header: running locally, so requests act as %s", HEADER, LOCAL_USER)
    return LOCAL_USER
