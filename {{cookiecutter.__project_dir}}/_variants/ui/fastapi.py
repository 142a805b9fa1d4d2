{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""{{ cookiecutter.project_name }}: JSON API and a small page, served by uvicorn. The API contract is in README.md."""

from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException

import items
import json_api
from database import DatabaseBusy, database, healthy, problem
from identity import NotSignedIn, current_user
from items.rules import InvalidItem

app = FastAPI(title={{ cookiecutter.project_name | tojson }})
PAGE = Path(__file__).parent / "static" / "index.html"


def refuse(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(json_api.error_body(message, field), status_code=status)


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


@app.exception_handler(RequestValidationError)
async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
    return refuse(400, "the request body must be a JSON object", "body")  # missing or not JSON at all


@app.exception_handler(HTTPException)
async def http_error(request: Request, error: HTTPException) -> JSONResponse:  # unknown path, wrong method
    return refuse(error.status_code, str(error.detail), "body" if error.status_code == 400 else None)  # unparsable


async def signed_in(request: Request) -> str:
    return current_user(request.headers)


User = Annotated[str, Depends(signed_in)]
Json = Annotated[Any, Body()]  # any JSON: json_api.fields() checks its shape, so both APIs refuse alike


@app.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(PAGE)


@app.get("/healthz")
{{ async_ }}def healthz(response: Response) -> dict[str, str]:
    ok = {{ await_ }}healthy()
    response.status_code = 200 if ok else 503
    return {"database": "ok" if ok else problem()}


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
