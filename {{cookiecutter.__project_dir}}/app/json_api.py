"""The HTTP shape of the JSON API, shared by the Flask and FastAPI files (the contract is in README.md)."""

from collections.abc import Mapping
from typing import NamedTuple

from security import CROSS_SITE, cross_site

JSON = "application/json"
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
UNEXPECTED = "something went wrong on our side; the app's log says what"  # never the error itself


class Refusal(NamedTuple):
    status: int
    error: str
    field: str | None


def refusal(method: str, headers: Mapping[str, str]) -> Refusal | None:
    """Why a request is refused before its body is read, or None: it comes from another site (403), or its
    body is not JSON (415: an HTML form or a ``text/plain`` fetch from another site cannot send JSON)."""
    if cross_site(method, headers):
        return Refusal(403, CROSS_SITE, None)
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if method.upper() in WITH_BODY and content_type != JSON:
        return Refusal(415, f"the request body must be JSON (Content-Type: {JSON})", "body")
    return None
