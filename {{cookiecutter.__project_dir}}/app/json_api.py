"""What the Flask and FastAPI APIs share about HTTP: which requests are read at all, the body's fields and the one
error body (the size cap is body_cap.py's).

Every error answer is ``{"error": "<what was wrong>", "field": "<the field>" | null}`` (docs/api.md, API contract).
"""

{% if cookiecutter.framework == "flask" -%}
import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode

from flask import request

from body_cap import MAX_BODY_BYTES, TOO_LARGE, BodyTooLarge
from identity import WRONG_HOST, wrong_host
from input_error import InputError
from security import CHANGES, CROSS_SITE, cross_site
{%- else -%}
from collections.abc import Mapping
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlencode

from fastapi import Depends, Request
{%- if cookiecutter.driver != "asyncpg" %}
from fastapi.concurrency import run_in_threadpool
{%- endif %}
from pydantic import BaseModel, Field

from database import Database, database{{ ", opened" if cookiecutter.driver != "asyncpg" }}
from identity import WRONG_HOST, current_user, wrong_host
from security import CHANGES, CROSS_SITE, cross_site
{%- endif %}

JSON = "application/json"
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
UNEXPECTED = "something went wrong on our side; the app's log says what"  # never the error itself


class Refusal(NamedTuple):
    status: int
    error: str
    field: str | None


def next_page_link(path: str, after: int | None, limit: str | None) -> dict[str, str]:
    """The `Link` header (RFC 8288) naming the next page, or no header on the last page."""
    if after is None:
        return {}
    query = urlencode({"after": after, **({"limit": limit} if limit is not None else {})})
    return {"Link": f'<{path}?{query}>; rel="next"'}


def error_body(message: str, field: str | None = None) -> dict[str, str | None]:
    return {"error": message, "field": field}


def refusal(method: str, headers: Mapping[str, str]) -> Refusal | None:
    """Why a request is refused before its body is read, or None: it comes from another site (403), or its
    body is not JSON (415: an HTML form or a ``text/plain`` fetch from another site cannot send JSON). Run locally,
    any request to another Host than the app's own address is refused (403, identity.wrong_host)."""
    if wrong_host(headers):
        return Refusal(403, WRONG_HOST, None)
    if method.upper() not in CHANGES:  # a read: nothing to check
        return None
    if cross_site(method, headers):
        return Refusal(403, CROSS_SITE, None)
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if method.upper() in WITH_BODY and content_type != JSON:
        return Refusal(415, f"the request body must be JSON (Content-Type: {JSON})", "body")
    return None
{%- if cookiecutter.framework == "flask" %}


class BadRequest(InputError):
    """A request body of the wrong shape; ``field`` names what was wrong (FastAPI's models check it there)."""


def body_fields(*names: str) -> list[Any]:
    """The values of exactly these fields of this request's JSON body, in order (malformed JSON: refused)."""
    return fields(capped_json(request.stream.read), *names)


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


def capped_json(read: Callable[[int], bytes]) -> object:
    """The JSON value of a body read through `read` (a WSGI input's), never more than MAX_BODY_BYTES of it
    whatever its framing; None when it is not JSON (fields() then refuses it)."""
    raw = read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLarge(TOO_LARGE)
    try:
        return json.loads(raw)
    except ValueError:  # malformed JSON, or not UTF-8
        return None
{%- else %}


class Problem(BaseModel):
    """The one error body of every framework's API."""

    error: str = Field(description="what was wrong")
    field: str | None = Field(description="the field, or null")


PROBLEMS = {
    400: {"model": Problem, "description": "refused input; nothing changed"},
    401: {"model": Problem, "description": "on Databricks, no signed-in user"},
    403: {"model": Problem, "description": "a change from another site"},
    404: {"model": Problem, "description": "the signed-in user has no such row (another user's included)"},
    409: {"model": Problem, "description": "the user is at the feature's limit (items: MAX_ITEMS); nothing created"},
    413: {"model": Problem, "description": "the body is over body_cap.MAX_BODY_BYTES"},
    415: {"model": Problem, "description": "the body is not JSON"},
    503: {"model": Problem, "description": "the database is busy or unusable (Retry-After says when to try again)"},
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The refusals a route documents in /docs."""
    return {status: PROBLEMS[status] for status in statuses}


async def signed_in(request: Request) -> str:
    return current_user(request.headers)


{%- if cookiecutter.driver != "asyncpg" %}


async def pool() -> Database:
    """This process's pool, opened on first use. FastAPI runs a ``def`` dependency in its threadpool, one more
    hand-off between threads on every request: once the pool is open it is handed over here, on the event loop."""
    return opened() or await run_in_threadpool(database)
{%- endif %}


User = Annotated[str, Depends(signed_in)]  # a route's signed-in user (NotSignedIn: 401)
Db = Annotated[Database, Depends({{ "database" if cookiecutter.driver == "asyncpg" else "pool" }})]  # this process's pool

{%- endif %}
