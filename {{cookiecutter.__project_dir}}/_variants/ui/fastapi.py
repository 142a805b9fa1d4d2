{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""{{ cookiecutter.project_name }}: JSON API and a small page, served by uvicorn. The API contract is in README.md."""

import logging
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import items
import json_api
from body_cap import BodyCap
from database import Database, DatabaseBusy, database, healthy, problem, said
from identity import NotSignedIn, current_user, local_sign_in, on_databricks
from items.rules import MAX_TITLE, InvalidItem, TooManyItems
from security import STRICT_POLICY, security_headers

# /docs is FastAPI's Swagger UI, whose script comes from cdn.jsdelivr.net and would run on the app's origin: never on
# Databricks, and locally only with API_DOCS=on (README: Security). /openapi.json, the contract, is always served.
DOCS = os.environ.get("API_DOCS") == "on" and not on_databricks()
app = FastAPI(
    title={{ cookiecutter.project_name | tojson }},
    description="The API contract is in README.md.",
    docs_url="/docs" if DOCS else None,
    redoc_url=None,
)
app.add_middleware(BodyCap)  # an oversized body is refused before it is read
STATIC = Path(__file__).parent / "static"
app.mount("/static", StaticFiles(directory=STATIC), name="static")
log = logging.getLogger(__name__)
# /docs (local runs with API_DOCS=on only): its script and stylesheet come from cdn.jsdelivr.net and it starts with
# an inline script, so it gets its own policy; the app's page keeps the strict one.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


# ---------------------------------------------------------------------- the API's shapes (and /docs)
class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # like the Flask API: no unknown field, no coercion
    title: str = Field(description=f"1 to {MAX_TITLE} characters after trimming, no control characters")


class ItemChange(NewItem):
    done: bool


class Item(BaseModel):
    id: int
    title: str
    done: bool
    created_at: str = Field(description="ISO 8601, UTC", examples=["2026-11-29T10:15:00.123456+00:00"])
    updated_at: str = Field(description="ISO 8601, UTC")


class Problem(BaseModel):
    """The one error body of every framework's API."""

    error: str = Field(description="what was wrong")
    field: str | None = Field(description="the field, or null")


PROBLEMS = {
    400: {"model": Problem, "description": "refused input; nothing changed"},
    401: {"model": Problem, "description": "on Databricks, no signed-in user"},
    403: {"model": Problem, "description": "a change from another site"},
    404: {"model": Problem, "description": "the user has no such item (another user's item included)"},
    409: {"model": Problem, "description": "the user already keeps items.rules.MAX_ITEMS items; nothing created"},
    413: {"model": Problem, "description": "the body is over body_cap.MAX_BODY_BYTES"},
    415: {"model": Problem, "description": "the body is not JSON"},
    503: {"model": Problem, "description": "the database is busy or unusable (Retry-After says when to try again)"},
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The refusals a route documents in /docs."""
    return {status: PROBLEMS[status] for status in statuses}


class NoSuchItem(Exception):
    """The signed-in user has no item with that id (another user's item included)."""


# ---------------------------------------------------------------------- errors, in the one body
def refuse(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(json_api.error_body(message, field), status_code=status)


class SameOriginJson:
    """Before any route: a cross-site or non-JSON change is refused unread. After: every response carries the
    security headers. Plain ASGI, so a request costs two header checks and no extra task."""

    HEADERS = [(name.lower().encode(), value.encode()) for name, value in security_headers(STRICT_POLICY).items()]
    DOCS_HEADERS = [(name.lower().encode(), value.encode()) for name, value in security_headers(DOCS_POLICY).items()]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = self.DOCS_HEADERS if DOCS and scope["path"] == "/docs" else self.HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        refused = json_api.refusal(scope["method"], Headers(scope=scope))
        signed = None if refused else local_sign_in(scope["path"], scope["query_string"].decode())
        if signed:  # run locally: the printed address's key becomes a cookie (identity.py)
            answer: ASGIApp = Response(status_code=303, headers={"Location": signed[0], "Set-Cookie": signed[1]})
        else:
            answer = refuse(*refused) if refused else self.app
        await answer(scope, receive, send_with_headers)


app.add_middleware(SameOriginJson)


@app.exception_handler(InvalidItem)
async def invalid(request: Request, error: InvalidItem) -> JSONResponse:
    return refuse(400, str(error), error.field)


@app.exception_handler(TooManyItems)
async def too_many(request: Request, error: TooManyItems) -> JSONResponse:
    return refuse(409, str(error), error.field)


@app.exception_handler(NoSuchItem)
async def no_such_item(request: Request, error: NoSuchItem) -> JSONResponse:
    return refuse(404, "no such item", "id")


@app.exception_handler(NotSignedIn)
async def not_signed_in(request: Request, error: NotSignedIn) -> JSONResponse:
    return refuse(401, str(error))


@app.exception_handler(DatabaseBusy)
async def busy(request: Request, error: DatabaseBusy) -> JSONResponse:
    message = said(error)  # also unusable (a refused login, a pending migration): one line, logged once
    response = refuse(503, message)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def _order(finding: dict[str, Any]) -> int:
    """What the Flask API reports first: the body's shape, then an unknown field, a missing one, a wrong type."""
    if len(finding["loc"]) < 2 or finding["type"] == "json_invalid":
        return 0
    return {"extra_forbidden": 1, "missing": 2}.get(finding["type"], 3)


@app.exception_handler(RequestValidationError)
async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
    first = min(error.errors(), key=_order)
    if _order(first) == 0:  # missing, not JSON, or not an object
        return refuse(400, "the request body must be a JSON object", "body")
    name = str(first["loc"][1])
    said = {"extra_forbidden": f"unknown field {name!r}", "missing": f"{name} is required"}
    return refuse(400, said.get(first["type"], f"{name}: {first['msg']}"), name)


@app.exception_handler(HTTPException)
async def http_error(request: Request, error: HTTPException) -> JSONResponse:  # unknown path, wrong method
    return refuse(error.status_code, str(error.detail), "body" if error.status_code == 400 else None)  # unparsable


@app.exception_handler(Exception)
async def unexpected(request: Request, error: Exception) -> JSONResponse:  # details to the log, never the caller
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return refuse(500, json_api.UNEXPECTED)


def openapi() -> dict[str, Any]:
    """FastAPI's schema without the 422 answer this API never gives (its refusals are 400, in the one body);
    replacing app.openapi is FastAPI's documented way (fastapi.tiangolo.com/how-to/extending-openapi)."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            operation["responses"].pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


app.openapi = openapi


# ---------------------------------------------------------------------- who asks, and the pool
async def signed_in(request: Request) -> str:
    return current_user(request.headers)


User = Annotated[str, Depends(signed_in)]
Db = Annotated[Database, Depends(database)]  # this process's pool, opened on first use


# ---------------------------------------------------------------------- the routes
@app.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@app.get("/healthz")
{{ async_ }}def healthz(response: Response) -> dict[str, str]:
    ok = {{ await_ }}healthy()
    response.status_code = 200 if ok else 503
    return {"database": "ok" if ok else problem()}


@app.get("/api/me")
async def me(owner: User) -> dict[str, str]:
    return {"email": owner}


@app.get("/api/items", responses=problems(400, 401, 503))
{{ async_ }}def list_items(
    owner: User, db: Db, response: Response, after: str | None = None, limit: str | None = None
) -> list[Item]:
    """One page of the signed-in user's items, oldest first (at most 100, `limit` for fewer, after the item
    `after`); a `Link: <...>; rel="next"` header names the next page, and the last page has none."""
    page, next_after = {{ await_ }}items.list_page(db, owner, after, limit)  # the query is checked there
    response.headers.update(json_api.next_page_link("/api/items", next_after, limit))
    return page  # dicts of Item's shape: FastAPI checks and documents them


@app.post("/api/items", status_code=201, responses=problems(400, 401, 403, 409, 413, 415, 503))
{{ async_ }}def create_item(body: NewItem, owner: User, db: Db) -> Item:
    return {{ await_ }}items.create_item(db, owner, body.title)


@app.put("/api/items/{item_id}", responses=problems(400, 401, 403, 404, 413, 415, 503))
{{ async_ }}def update_item(item_id: str, body: ItemChange, owner: User, db: Db) -> Item:
    item = {{ await_ }}items.update_item(db, owner, item_id, title=body.title, done=body.done)
    if item is None:
        raise NoSuchItem
    return item


@app.delete("/api/items/{item_id}", status_code=204, responses=problems(400, 401, 403, 404, 503))
{{ async_ }}def delete_item(item_id: str, owner: User, db: Db) -> Response:
    if not {{ await_ }}items.delete_item(db, owner, item_id):
        raise NoSuchItem
    return Response(status_code=204)
