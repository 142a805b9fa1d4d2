{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""{{ cookiecutter.project_name }}: JSON API and a small page, served by uvicorn. The API contract is in README.md."""

import logging
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import json_api
from body_cap import BodyCap
from database import DatabaseBusy, healthy, problem, said
from identity import NotSignedIn, local_sign_in, on_databricks
from input_error import InputError
from items.api import router as items_api
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


@app.exception_handler(InputError)
async def refused_input(request: Request, error: InputError) -> JSONResponse:  # every feature's refusals
    return refuse(error.status, str(error), error.field)


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
async def me(owner: json_api.User) -> dict[str, str]:
    return {"email": owner}


# One router per feature, each in its own package (items/api.py); a second feature adds its line here.
app.include_router(items_api)
