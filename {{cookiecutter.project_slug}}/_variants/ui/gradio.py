{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""{{ cookiecutter.project_name }}: a Gradio UI mounted on FastAPI, served by uvicorn."""

from typing import Any

import gradio as gr
from fastapi import FastAPI, Response

from database import database, healthy, items, problem
from database.settings import LOCAL_USER

COLUMNS = ["id", "title", "done", "updated_at"]


def owner(request: gr.Request | None) -> str:
    headers = request.headers if request is not None else {}
    return headers.get("x-forwarded-email") or LOCAL_USER


def table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[row["id"], row["title"], row["done"], row["updated_at"].isoformat()] for row in rows]


{{ async_ }}def list_items(request: gr.Request) -> list[list[Any]]:
    return table({{ await_ }}items.list_items({{ await_ }}database(), owner(request)))


{{ async_ }}def create_item(title: str, request: gr.Request) -> list[list[Any]]:
    try:
        {{ await_ }}items.create_item({{ await_ }}database(), owner(request), title)
    except ValueError as error:  # refused input changes no row
        raise gr.Error(str(error)) from None
    return {{ await_ }}list_items(request)


{{ async_ }}def update_item(item_id: float, title: str, done: bool, request: gr.Request) -> list[list[Any]]:
    try:
        row = {{ await_ }}items.update_item({{ await_ }}database(), owner(request), int(item_id), title, done)
    except ValueError as error:
        raise gr.Error(str(error)) from None
    if row is None:
        raise gr.Error(f"You have no item {int(item_id)}.")
    return {{ await_ }}list_items(request)


{{ async_ }}def delete_item(item_id: float, request: gr.Request) -> list[list[Any]]:
    if not {{ await_ }}items.delete_item({{ await_ }}database(), owner(request), int(item_id)):
        raise gr.Error(f"You have no item {int(item_id)}.")
    return {{ await_ }}list_items(request)


with gr.Blocks(title={{ cookiecutter.project_name | tojson }}) as demo:
    gr.Markdown("# {{ cookiecutter.project_name }}")
    with gr.Row():
        new_title = gr.Textbox(label="New item", max_length=200)
        add = gr.Button("Add")
    with gr.Row():
        item_id = gr.Number(label="Item id", precision=0)
        title = gr.Textbox(label="Title", max_length=200)
        done = gr.Checkbox(label="Done")
        save = gr.Button("Save")
        delete = gr.Button("Delete")
    rows = gr.Dataframe(headers=COLUMNS, label="Your items", interactive=False)

    add.click(create_item, [new_title], rows, api_name="create_item")
    save.click(update_item, [item_id, title, done], rows, api_name="update_item")
    delete.click(delete_item, [item_id], rows, api_name="delete_item")
    demo.load(list_items, None, rows, api_name="list_items")

app = FastAPI()


@app.get("/healthz")
{{ async_ }}def healthz(response: Response) -> dict[str, str]:
    ok = {{ await_ }}healthy()
    response.status_code = 200 if ok else 503
    return {"database": "ok" if ok else problem()}


app = gr.mount_gradio_app(app, demo, path="/")
