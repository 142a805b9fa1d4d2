"""{{ cookiecutter.project_name }}: a Dash page, served by gunicorn (``main:server``)."""

from typing import Any

import flask
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

import items
from database import database, healthy, problem
from identity import NotSignedIn, current_user
from items.rules import InvalidItem

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
        html.P(id="message", role="alert"),
        dcc.Store(id="changes", data=0),  # bumped after every change: the list below reloads
        html.Ul(id="items"),
    ]
)


@app.callback(
    Output("changes", "data"),
    Output("message", "children"),
    Output("new-title", "value"),
    Input("add", "n_clicks"),
    Input({"type": "done", "item": ALL}, "value"),
    Input({"type": "delete", "item": ALL}, "n_clicks"),
    State("new-title", "value"),
    State("changes", "data"),
    prevent_initial_call=True,
)
def change(_add: int, _done: list, _delete: list, new_title: Any, changes: int) -> tuple[Any, Any, Any]:
    """Add an item, or act on the row whose checkbox or Delete button was used."""
    trigger = ctx.triggered_id  # None when Dash only inserted new rows
    try:
        owner = current_user(flask.request.headers)
        if trigger == "add":
            items.create_item(database(), owner, new_title)
            return (changes or 0) + 1, "", ""  # the input is cleared for the next item
        if not isinstance(trigger, dict):
            return no_update, no_update, no_update
        value = ctx.triggered[0]["value"]
        if trigger["type"] == "done":
            done = value == ["done"] if isinstance(value, list) else value  # anything else: refused
            found = items.update_item(database(), owner, trigger["item"], done=done)
        elif value:  # a click, not a button that just appeared
            found = items.delete_item(database(), owner, trigger["item"])
        else:
            return no_update, no_update, no_update
    except (InvalidItem, NotSignedIn) as error:  # refused input changes no row
        return no_update, str(error), no_update
    return (changes or 0) + 1, "" if found else "That item is not in your list any more.", no_update


@app.callback(Output("items", "children"), Input("changes", "data"))
def show(_changes: int) -> list[Any]:
    try:
        rows = items.list_items(database(), current_user(flask.request.headers))
    except NotSignedIn as error:
        return [html.Li(str(error))]
    return [
        html.Li(
            [
                dcc.Checklist(
                    id={"type": "done", "item": row["id"]},
                    options=[{"label": row["title"], "value": "done"}],  # text, never HTML
                    value=["done"] if row["done"] else [],
                    inline=True,
                ),
                html.Button("Delete", id={"type": "delete", "item": row["id"]}, n_clicks=0),
            ]
        )
        for row in rows
    ]
