"""What the Flask and FastAPI APIs share about HTTP: which requests are read at all, the body's fields and the one
error body.

Every error answer is ``{"error": "<what was wrong>", "field": "<the field>" | null}`` (README, API contract).
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

from security import CROSS_SITE, cross_site

JSON = "application/json"
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
UNEXPECTED = "something went wrong on our side; the app's log says what"  # never the error itself


class BadRequest(ValueError):
    """A request body of the wrong shape; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Refusal(NamedTuple):
    status: int
    error: str
    field: str | None


def error_body(message: str, field: str | None = None) -> dict[str, str | None]:
    return {"error": message, "field": field}


def refusal(method: str, headers: Mapping[str, str]) -> Refusal | None:
    """Why a request is refused before its body is read, or None: it comes from another site (403), or its
    body is not JSON (415: an HTML form or a ``text/plain`` fetch from another site cannot send JSON)."""
    if cross_site(method, headers):
        return Refusal(403, CROSS_SITE, None)
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if method.upper() in WITH_BODY and content_type != JSON:
        return Refusal(415, f"the request body must be JSON (Content-Type: {JSON})", "body")
    return None


def fields(body: object, *names: str) -> list[Any]:
    """The values of exactly these fields of a JSON request body, in order."""
    if not isinstance(body, dict):
        raise BadRequest("body", "the request body must be a JSON object")
    for name in body:
        if name not in names:
            raise BadRequest(str(name), f"unknown field {name!r}")
    for name in names:
        if name not in body:
            raise BadRequest(name, f"{name} is required")
    return [body[name] for name in names]
