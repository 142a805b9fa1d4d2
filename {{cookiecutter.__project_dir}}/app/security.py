"""What a browser may do with this app: change data only from the app's own pages, and never frame it.

A signed-in user's browser sends the Apps proxy's session cookie with any request, also one a hostile page
makes (an HTML form, a fetch with ``text/plain``). So a request that changes something must come from this
app's own origin: the browser says where it comes from in ``Sec-Fetch-Site`` and ``Origin``, and neither can
be set by a page's script. The app's own host is ``X-Forwarded-Host`` behind the Databricks Apps proxy ("the
original host or domain requested by the client",
https://docs.databricks.com/aws/en/dev-tools/databricks-apps/http-headers), else ``Host`` (run locally).
A request with neither header did not come from a web page (curl, an API client): the user's own access.
"""

from collections.abc import Mapping
from urllib.parse import urlsplit

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CROSS_SITE = "refused: a change must come from this app's own pages (cross-site request)"


def own_host(headers: Mapping[str, str]) -> str:
    forwarded = (headers.get("X-Forwarded-Host") or "").split(",")[0].strip()
    return (forwarded or headers.get("Host") or "").lower()


def cross_site(method: str, headers: Mapping[str, str]) -> bool:
    """True when a state-changing request came from a page of another origin (refuse it, change nothing)."""
    if method.upper() not in CHANGES:
        return False
    if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):  # same-site: another app
        return True
    origin = headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc.lower() != own_host(headers)  # "null" included


def security_headers(content_security_policy: str) -> dict[str, str]:
    """The headers every response carries; the policy is the one the framework's page really satisfies."""
    return {
        "Content-Security-Policy": content_security_policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # for browsers without CSP frame-ancestors
        "Referrer-Policy": "same-origin",
    }


# The page of this app: its own scripts and styles only, nothing inline, no other origin, never in a frame.
STRICT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
