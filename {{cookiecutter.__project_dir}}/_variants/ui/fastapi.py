{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""{{ cookiecutter.project_name }}: JSON API and a small page, served by uvicorn. The API contract is in README.md."""

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import items
import json_api
from database import DatabaseBusy, database, healthy, problem
from identity import NotSignedIn, current_user
from items.rules import InvalidItem
from security import STRICT_POLICY, security_headers

app = FastAPI(title={{ cookiecutter.project_name | tojson }})
app.add_middleware(json_api.BodyCap)  # an oversized body is refused before it is read
STATIC = Path(__file__).parent / "static"
app.mount("/static", StaticFiles(directory=STATIC), name="static")
log = logging.getLogger(__name__)
# /docs is FastAPI's Swagger UI: its script and stylesheet come from cdn.jsdelivr.net and it starts with an
# inline script, so it gets its own policy; the app's page keeps the strict one.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def refuse(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(json_api.error_body(message, field), status_code=status)


class SameOriginJson:
    """Before any route: a cross-site or non-JSON change is refused unread. After: every response carries the
    security headers. Plain ASGI, so a request costs two header checks and no extra task."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        policy = security_headers(DOCS_POLICY if scope["path"] in ("/docs", "/redoc") else STRICT_POLICY)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(policy)
            await send(message)

        refused = json_api.refusal(scope["method"], Headers(scope=scope))
        await (refuse(*refused) if refused else self.app)(scope, receive, send_with_headers)


app.add_middleware(SameOriginJson)


@app.exception_handler(json_api.BadRequest)
@app.exception_handler(InvalidItem)
async def invalid(request: Request, error: json_api.BadRequest | InvalidItem) -> JSONResponse:
    return refuse(400, str(error), error.field)


@app.exception_handler(NotSignedIn)
async def not_signed_in(request: Request, error: NotSignedIn) -> JSONResponse:
    return refuse(401, str(error))


@app.exception_handler(DatabaseBusy)
async def busy(request: Request, error: DatabaseBusy) -> JSONResponse:
    response = refuse(503, "the database is busy: try again shortly")
    response.headers["Retry-After"] = str(error.retry_after)
    return response


@app.exception_handler(json_api.BodyTooLarge)
async def too_large(request: Request, error: json_api.BodyTooLarge) -> JSONResponse:
    return refuse(413, str(error), "body")


@app.exception_handler(RequestValidationError)
async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
    return refuse(400, "the request body must be a JSON object", "body")  # missing or not JSON at all


@app.exception_handler(HTTPException)
async def http_error(request: Request, error: HTTPException) -> JSONResponse:  # unknown path, wrong method
    if isinstance(error.__cause__, json_api.BodyTooLarge):  # FastAPI turns any error reading the body into a 400
        return await too_large(request, error.__cause__)
    return refuse(error.status_code, str(error.detail), "body" if error.status_code == 400 else None)  # unparsable


@app.exception_handler(Exception)
async def unexpected(request: Request, error: Exception) -> JSONResponse:  # details to the log, never the caller
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return refuse(500, json_api.UNEXPECTED)


async def signed_in(request: Request) -> str:
    return current_user(request.headers)


User = Annotated[str, Depends(signed_in)]
Json = Annotated[Any, Body()]  # any JSON: json_api.fields() checks its shape, so both APIs refuse alike


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


@app.get("/api/items")
{{ async_ }}def list_items(owner: User) -> JSONResponse:
    return JSONResponse({{ await_ }}items.list_items({{ await_ }}database(), owner))


@app.post("/api/items")
{{ async_ }}def create_item(owner: User, body: Json = None) -> JSONResponse:
    (title,) = json_api.fields(body, "title")
    return JSONResponse({{ await_ }}items.create_item({{ await_ }}database(), owner, title), status_code=201)


@app.put("/api/items/{item_id}")
{{ async_ }}def update_item(item_id: str, owner: User, body: Json = None) -> JSONResponse:
    title, done = json_api.fields(body, "title", "done")
    item = {{ await_ }}items.update_item({{ await_ }}database(), owner, item_id, title, done)
    return JSONResponse(item) if item else refuse(404, "no such item", "id")


@app.delete("/api/items/{item_id}")
{{ async_ }}def delete_item(item_id: str, owner: User) -> Response:
    if not {{ await_ }}items.delete_item({{ await_ }}database(), owner, item_id):
        return refuse(404, "no such item", "id")
    return Response(status_code=204)
