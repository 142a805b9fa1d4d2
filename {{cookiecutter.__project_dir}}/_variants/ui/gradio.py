{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""{{ cookiecutter.project_name }}: a Gradio UI mounted on FastAPI, served by uvicorn."""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware

import items
from body_cap import BodyCap
from database import Database, DatabaseBusy, database, healthy, problem, said
from identity import WRONG_HOST, NotSignedIn, current_user, local_sign_in, wrong_host
from input_error import InputError
from security import CROSS_SITE, cross_site, security_headers

NAME = {{ cookiecutter.project_name | tojson }}
COLUMNS = ["Title", "Done", "Updated"]
EMPTY = "Nothing here yet: add your first item above."


def owner(request: gr.Request) -> str:
    try:
        return current_user(request.headers)
    except NotSignedIn as error:
        raise gr.Error(str(error)) from None


{{ async_ }}def list_items(request: gr.Request) -> tuple[list[list[Any]], Any, Any]:
    try:
        rows = {{ await_ }}items.list_items({{ await_ }}database(), owner(request))
    except DatabaseBusy as error:  # busy, or unusable: one line that says what to do; show_error hides the rest
        raise gr.Error(said(error)) from None
    table = [[row["title"], row["done"], readable(row["updated_at"])] for row in rows]
    # Rows are picked by title; their ids never show (they would tell how many items others have).
    return table, gr.Dropdown(choices=[(row["title"], row["id"]) for row in rows], value=None), empty_line(rows)


def readable(stamp: str) -> str:
    moment = datetime.fromisoformat(stamp)  # UTC (README: API contract)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def empty_line(rows: list[Any]) -> Any:
    return gr.Markdown(EMPTY, visible=not rows)


def signed_in(request: gr.Request) -> str:
    return f"Signed in as `{owner(request).replace('`', '')}`"  # in a code span: shown as it is, not a link


{{ async_ }}def act(change: Callable[[Database, str], Any], request: gr.Request) -> tuple[list[list[Any]], Any, Any]:
    """Run one change for the signed-in user, then show the list again; refused input changes no row."""
    try:
        found = {{ await_ }}change({{ await_ }}database(), owner(request))
    except InputError as error:
        raise gr.Error(str(error)) from None
    except DatabaseBusy as error:
        raise gr.Error(said(error)) from None
    if not found:
        raise gr.Error("That item is not in your list any more.")
    return {{ await_ }}list_items(request)


{{ async_ }}def create_item(title: str, request: gr.Request) -> tuple[list[list[Any]], Any, Any, str]:
    return (*({{ await_ }}act(lambda db, user: items.create_item(db, user, title), request)), "")  # clears the input


{{ async_ }}def set_done(item: Any, done: bool, request: gr.Request) -> tuple[list[list[Any]], Any, Any]:
    return {{ await_ }}act(lambda db, user: items.update_item(db, user, item, done=done), request)


{{ async_ }}def delete_item(item: Any, request: gr.Request) -> tuple[list[list[Any]], Any, Any]:
    return {{ await_ }}act(lambda db, user: items.delete_item(db, user, item), request)


with gr.Blocks(title=NAME) as demo:
    gr.Markdown(f"# {NAME}")
    who = gr.Markdown(elem_classes=["who"])
    with gr.Row(equal_height=True):
        new_title = gr.Textbox(label="New item", placeholder="What needs doing?", max_length=200, scale=4)
        add = gr.Button("Add", variant="primary", scale=1)
    rows = gr.Dataframe(headers=COLUMNS, datatype=["str", "bool", "str"], label="Your items", interactive=False)
    empty = gr.Markdown(EMPTY, elem_classes=["empty"])
    with gr.Row():
        item = gr.Dropdown(label="Item", choices=[], allow_custom_value=True)  # the id is checked server-side
        done = gr.Checkbox(label="Done")
        save = gr.Button("Save")
        delete = gr.Button("Delete")

    add.click(create_item, [new_title], [rows, item, empty, new_title], api_name="create_item")
    save.click(set_done, [item, done], [rows, item, empty], api_name="set_done")
    delete.click(delete_item, [item], [rows, item, empty], api_name="delete_item")
    demo.load(list_items, None, [rows, item, empty], api_name="list_items")
    demo.load(signed_in, None, [who], api_name="signed_in")

app = FastAPI()
# Gradio's own CORS answer reflects any Origin, with credentials, when the Host is not localhost (gradio's
# route_utils.CustomCORSMiddleware); a CORSMiddleware of the parent app replaces it (mount_gradio_app's
# docstring), and this one allows no other origin at all: another site cannot read an answer.
app.add_middleware(CORSMiddleware, allow_origins=[])
app.add_middleware(BodyCap)  # an oversized body is refused before Gradio reads it
# The system's fonts: the default theme would load its fonts from Google's CDN (not offline, not under the policy).
THEME = gr.themes.Default(primary_hue="blue", font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
# Gradio's page starts itself with inline scripts and styles and has no way to give them a nonce or a hash,
# so its policy has to allow inline code; it still allows no other origin, no plugin, and no framing.
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


@app.middleware("http")
async def same_origin(request: Request, call_next: Callable[[Request], Any]) -> Response:
    """A change from another site's page (Gradio's call API, an upload) is refused before Gradio sees it."""
    if wrong_host(request.headers):  # run locally: another Host than the app's own address
        response: Response = JSONResponse({"error": WRONG_HOST}, status_code=403)
    elif cross_site(request.method, request.headers):
        response = JSONResponse({"error": CROSS_SITE}, status_code=403)
    elif signed := local_sign_in(request.url.path, request.url.query):  # run locally: the key becomes a cookie
        response = Response(status_code=303, headers={"Location": signed[0], "Set-Cookie": signed[1]})
    else:
        response = await call_next(request)
    response.headers.update(security_headers(POLICY))
    return response


@app.get("/healthz")
{{ async_ }}def healthz(response: Response) -> dict[str, str]:
    ok = {{ await_ }}healthy()
    response.status_code = 200 if ok else 503
    return {"database": "ok" if ok else problem()}


# show_error=False: an unexpected error shows as "Error", never its text (a gr.Error's message still shows).
# max_file_size: this UI takes no files, so Gradio's upload route takes none either.
app = gr.mount_gradio_app(
    app,
    demo,
    path="/",
    show_error=False,
    max_file_size=1,
    theme=THEME,
    css_paths=[Path(__file__).parent / "static" / "style.css"],
)
