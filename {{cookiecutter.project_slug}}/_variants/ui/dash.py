"""{{ cookiecutter.project_name }}: a Dash page, served by gunicorn (``main:server``)."""

from typing import Any

import flask
from dash import Dash, Input, Output, State, ctx, dcc, html

from database import database, healthy, items, problem
from database.settings import LOCAL_USER

app = Dash(__name__, title={{ cookiecutter.project_name | tojson }})
server = app.server


@server.get("/healthz")
def healthz() -> tuple[Any, int]:
    ok = healthy()
    return flask.jsonify(database="ok" if ok else problem()), 200 if ok else 503


app.layout = html.Main(
    [
        html.H1({{ cookiecutter.project_name | tojson }}),
        html.Div(
            [
                dcc.Input(id="new-title", placeholder="What needs doing?", maxLength=200),
                html.Button("Add", id="add", n_clicks=0),
            ]
        ),
        html.Div(
            [
                dcc.Input(id="edit-id", type="number", placeholder="Item id"),
                dcc.Input(id="edit-title", placeholder="New title", maxLength=200),
                dcc.Checklist(id="edit-done", options=[{"label": "done", "value": "done"}], value=[]),
                html.Button("Save", id="save", n_clicks=0),
                html.Button("Delete", id="delete", n_clicks=0),
            ]
        ),
        html.P(id="message", role="alert"),
        dcc.Store(id="items-data"),
        html.Table(id="items-table"),
    ]
)


@app.callback(
    Output("items-data", "data"),
    Output("message", "children"),
    Input("add", "n_clicks"),
    Input("save", "n_clicks"),
    Input("delete", "n_clicks"),
    State("new-title", "value"),
    State("edit-id", "value"),
    State("edit-title", "value"),
    State("edit-done", "value"),
)
def change_items(
    _add: int,
    _save: int,
    _delete: int,
    new_title: str | None,
    item_id: int | None,
    title: str | None,
    done: list[str] | None,
) -> tuple[list[dict[str, Any]], str]:
    owner = flask.request.headers.get("X-Forwarded-Email") or LOCAL_USER
    db = database()
    message = ""
    try:
        if ctx.triggered_id == "add":
            item = items.create_item(db, owner, new_title or "")
            message = f"Added item {item['id']}."
        elif ctx.triggered_id == "save":
            if items.update_item(db, owner, int(item_id or 0), title or "", "done" in (done or [])) is None:
                message = f"You have no item {item_id}."
        elif ctx.triggered_id == "delete":
            if not items.delete_item(db, owner, int(item_id or 0)):
                message = f"You have no item {item_id}."
    except ValueError as error:  # refused input changes no row
        message = str(error)
    rows = [
        {"id": row["id"], "title": row["title"], "done": row["done"], "updated_at": row["updated_at"].isoformat()}
        for row in items.list_items(db, owner)
    ]
    return rows, message


@app.callback(Output("items-table", "children"), Input("items-data", "data"))
def show_items(rows: list[dict[str, Any]] | None) -> list[Any]:
    header = html.Tr([html.Th("id"), html.Th("title"), html.Th("done")])
    cells = [[html.Td(row["id"]), html.Td(row["title"]), html.Td("yes" if row["done"] else "")] for row in rows or []]
    return [header, *[html.Tr(row) for row in cells]]
