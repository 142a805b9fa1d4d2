{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""{{ cookiecutter.project_name }}: a Gradio UI mounted on FastAPI, served by uvicorn."""

from collections.abc import Callable
from typing import Any

import gradio as gr
from fastapi import FastAPI, Response

import items
from database import Database, database, healthy, problem
from identity import NotSignedIn, current_user
from items.rules import InvalidItem

COLUMNS = ["title", "done", "updated"]


def owner(request: gr.Request) -> str:
    try:
        return current_user(request.headers)
    except NotSignedIn as error:
        raise gr.Error(str(error)) from None


{{ async_ }}def list_items(request: gr.Request) -> tuple[list[list[Any]], Any]:
    rows = {{ await_ }}items.list_items({{ await_ }}database(), owner(request))
    table = [[row["title"], row["done"], row["updated_at"]] for row in rows]
    # Rows are picked by title; their ids never show (they would tell how many items others have).
    return table, gr.Dropdown(choices=[(row["title"], row["id"]) for row in rows], value=None)


{{ async_ }}def act(change: Callable[[Database, str], Any], request: gr.Request) -> tuple[list[list[Any]], Any]:
    """Run one change for the signed-in user, then show the list again; refused input changes no row."""
    try:
        found = {{ await_ }}change({{ await_ }}database(), owner(request))
    except InvalidItem as error:
        raise gr.Error(str(error)) from None
    if not found:
        raise gr.Error("That item is not in your list any more.")
    return {{ await_ }}list_items(request)


{{ async_ }}def create_item(title: str, request: gr.Request) -> tuple[list[list[Any]], Any, str]:
    return (*({{ await_ }}act(lambda db, user: items.create_item(db, user, title), request)), "")  # clears the input


{{ async_ }}def set_done(item: Any, done: bool, request: gr.Request) -> tuple[list[list[Any]], Any]:
    return {{ await_ }}act(lambda db, user: items.update_item(db, user, item, done=done), request)


{{ async_ }}def delete_item(item: Any, request: gr.Request) -> tuple[list[list[Any]], Any]:
    return {{ await_ }}act(lambda db, user: items.delete_item(db, user, item), request)


with gr.Blocks(title={{ cookiecutter.project_name | tojson }}) as demo:
    gr.Markdown("# {{ cookiecutter.project_name }}")
    with gr.Row():
        new_title = gr.Textbox(label="New item", max_length=200)
        add = gr.Button("Add")
    rows = gr.Dataframe(headers=COLUMNS, label="Your items", interactive=False)
    with gr.Row():
        item = gr.Dropdown(label="Item", choices=[], allow_custom_value=True)  # the id is checked server-side
        done = gr.Checkbox(label="Done")
        save = gr.Button("Save")
        delete = gr.Button("Delete")

    add.click(create_item, [new_title], [rows, item, new_title], api_name="create_item")
    save.click(set_done, [item, done], [rows, item], api_name="set_done")
    delete.click(delete_item, [item], [rows, item], api_name="delete_item")
    demo.load(list_items, None, [rows, item], api_name="list_items")

app = FastAPI()


@app.get("/healthz")
{{ async_ }}def healthz(response: Response) -> dict[str, str]:
    ok = {{ await_ }}healthy()
    response.status_code = 200 if ok else 503
    return {"database": "ok" if ok else problem()}


app = gr.mount_gradio_app(app, demo, path="/")
