"""Who is asking: the one rule every page and API of this app follows.

On Databricks the Apps proxy names the signed-in user in ``X-Forwarded-Email`` on every request
(https://docs.databricks.com/aws/en/dev-tools/databricks-apps/http-headers). A request without it
did not come through the proxy, so it is refused there. The Apps runtime sets
``DATABRICKS_APP_NAME`` in every app (https://docs.databricks.com/aws/en/dev-tools/databricks-apps/system-env);
``./run-local.sh`` does not. Only then, run locally, does a request without the header act as
``LOCAL_USER``, and the log says so.
"""

import logging
import os
from collections.abc import Mapping

LOCAL_USER = "local.user@example.com"
HEADER = "X-Forwarded-Email"

log = logging.getLogger(__name__)
_warned = False


class NotSignedIn(PermissionError):
    """A request on Databricks without the signed-in user's header."""


def on_databricks() -> bool:
    return bool(os.environ.get("DATABRICKS_APP_NAME"))


def current_user(headers: Mapping[str, str]) -> str:
    """The signed-in user's e-mail, lower-cased; ``headers`` must look names up case-insensitively."""
    global _warned
    email = (headers.get(HEADER) or "").strip().lower()
    if email:
        return email
    if on_databricks():
        raise NotSignedIn(f"not signed in: requests must come through the Databricks Apps proxy ({HEADER})")
    if not _warned:
        _warned = True
        log.warning("no %s header: running locally, so requests act as %s", HEADER, LOCAL_USER)
    return LOCAL_USER
