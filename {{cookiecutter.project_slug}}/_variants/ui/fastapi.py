{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""{{ cookiecutter.project_name }}: JSON API and a small page, served by uvicorn."""

from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from database import database, healthy, items, problem
from database.settings import LOCAL_USER

app = FastAPI(title={{ cookiecutter.project_name | tojson }})
PAGE = Path(__file__).parent / "static" / "index.html"

Owner = Annotated[str | None, Header(alias="X-Forwarded-Email")]


class NewItem(BaseModel):
    title: str


class ItemChange(BaseModel):
    title: str
    done: bool = False


@app.exception_handler(ValueError)
async def refuse(request: Request, error: ValueError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=400)


@app.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(PAGE)


@app.get("/healthz")
{{ async_ }}def healthz(response: Response) -> dict[str, str]:
    ok = {{ await_ }}healthy()
    response.status_code = 200 if ok else 503
    return {"database": "ok" if ok else problem()}


@app.get("/api/items")
{{ async_ }}def list_items(owner: Owner = None) -> list[dict[str, Any]]:
    return {{ await_ }}items.list_items({{ await_ }}database(), owner or LOCAL_USER)


@app.post("/api/items", status_code=201)
{{ async_ }}def create_item(new: NewItem, owner: Owner = None) -> dict[str, Any]:
    return {{ await_ }}items.create_item({{ await_ }}database(), owner or LOCAL_USER, new.title)


@app.put("/api/items/{item_id}")
{{ async_ }}def update_item(item_id: int, change: ItemChange, owner: Owner = None) -> dict[str, Any]:
    row = {{ await_ }}items.update_item({{ await_ }}database(), owner or LOCAL_USER, item_id, change.title, change.done)
    if row is None:
        raise HTTPException(status_code=404, detail="no such item")
    return row


@app.delete("/api/items/{item_id}", status_code=204)
{{ async_ }}def delete_item(item_id: int, owner: Owner = None) -> None:
    if not {{ await_ }}items.delete_item({{ await_ }}database(), owner or LOCAL_USER, item_id):
        raise HTTPException(status_code=404, detail="no such item")
