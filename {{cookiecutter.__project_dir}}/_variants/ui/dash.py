"""{{ cookiecutter.project_name }}: a Dash page, served by gunicorn (``main:server``)."""

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import flask
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from werkzeug.exceptions import RequestEntityTooLarge

import body_cap
import items
import serving
from database import DatabaseBusy, database, healthy, problem, said
from identity import WRONG_HOST, NotSignedIn, current_user, local_sign_in, wrong_host
from input_error import InputError
from security import CROSS_SITE, cross_site, security_headers

NAME = {{ cookiecutter.project_name | tojson }}
UNEXPECTED = "Something went wrong on our side; the app's log says what."  # never the error itself
log = logging.getLogger(__name__)

# static/style.css is served by Dash itself (its assets folder): no CDN, works offline and under the policy.
app = Dash(__name__, title=NAME, assets_folder=str(Path(__file__).parent / "static"))
server = app.server
# Werkzeug stops reading a chunked body there: one byte over the cap, so that same_origin() sees it is over
server.config["MAX_CONTENT_LENGTH"] = body_cap.MAX_BODY_BYTES + 1


@server.get("/healthz")
def healthz() -> tuple[Any, int]:
    ok = healthy()
    return flask.jsonify(database="ok" if ok else problem()), 200 if ok else 503


def readable(stamp: str) -> str:
    moment = datetime.fromisoformat(stamp)  # UTC (docs/api.md: API contract)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


app.layout = html.Main(
    [
        html.Header([html.H1(NAME), html.Span(id="who", className="who")]),
        html.Div(
            [
                dcc.Input(id="new-title", placeholder="What needs doing?", maxLength=200),
                html.Button("Add", id="add", n_clicks=0, className="primary"),
            ],
            className="new-item",
        ),
        html.P(id="message", role="alert", className="error"),
        dcc.Store(id="changes", data=0),  # bumped after every change: the list below reloads
        html.Ul(id="items", className="items"),
    ],
    className="page",
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
    except (InputError, NotSignedIn) as error:  # refused input changes no row
        return no_update, str(error), no_update
    except DatabaseBusy as error:  # busy, or unusable: one line that says what to do (logged once)
        return no_update, said(error), no_update
    except Exception:  # said in the page; the details go to the log only
        log.exception("could not change an item")
        return no_update, UNEXPECTED, no_update
    return (changes or 0) + 1, "" if found else "That item is not in your list any more.", no_update


@app.callback(Output("items", "children"), Input("changes", "data"))
def show(_changes: int) -> list[Any]:
    try:
        rows = items.list_items(database(), current_user(flask.request.headers))
    except NotSignedIn as error:
        return [html.Li(str(error), className="error")]
    except DatabaseBusy as error:
        return [html.Li(said(error), className="error")]
    except Exception:
        log.exception("could not list the items")
        return [html.Li(UNEXPECTED, className="error")]
    if not rows:
        return [html.Li("Nothing here yet: add your first item above.", className="empty")]
    return [
        html.Li(
            [
                dcc.Checklist(
                    id={"type": "done", "item": row["id"]},
                    options=[{"label": row["title"], "value": "done"}],  # text, never HTML
                    value=["done"] if row["done"] else [],
                    inline=True,
                    className="title",
                ),
                html.Time(readable(row["updated_at"]), dateTime=row["updated_at"], className="when"),
                html.Button("Delete", id={"type": "delete", "item": row["id"]}, n_clicks=0),
            ],
            className="done" if row["done"] else "",
        )
        for row in rows
    ]


@app.callback(Output("who", "children"), Input("changes", "data"))
def who(_changes: int) -> str:
    try:
        return f"Signed in as {current_user(flask.request.headers)}"
    except NotSignedIn:
        return "Not signed in"


# Dash's callbacks already need JSON (its Flask backend reads them with request.get_json(), which answers 415
# to any other content type); what is left is the origin, and the headers the page satisfies. Dash's page
# starts its renderer with inline scripts: the policy allows exactly those, by hash (Dash.csp_hashes()).
POLICY = (
    f"default-src 'self'; script-src 'self' {' '.join(app.csp_hashes())}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@server.before_request
def same_origin() -> tuple[Any, int] | None:
    if wrong_host(flask.request.headers):  # run locally: another Host than the app's own address
        return flask.jsonify(error=WRONG_HOST, field=None), 403
    if cross_site(flask.request.method, flask.request.headers):
        return flask.jsonify(error=CROSS_SITE, field=None), 403
    # Refused on its Content-Length before a byte of it is read; a chunked body is read (kept for Dash) up to the
    # byte past the cap. Dash itself would answer a cut-off body 400, as malformed JSON.
    if body_cap.declared_too_large(flask.request.content_length) or body_cap.over(flask.request.get_data(cache=True)):
        raise RequestEntityTooLarge()
    return None


@server.errorhandler(RequestEntityTooLarge)
def too_large(_error: RequestEntityTooLarge) -> tuple[Any, int]:
    return flask.jsonify(error=body_cap.TOO_LARGE, field="body"), 413


@server.before_request
def sign_in_locally() -> flask.Response | None:  # run locally: the printed address's key becomes a cookie
    signed = local_sign_in(flask.request.path, flask.request.query_string.decode())
    return flask.Response(status=303, headers={"Location": signed[0], "Set-Cookie": signed[1]}) if signed else None


@server.after_request
def headers(response: flask.Response) -> flask.Response:
    response.headers.update(security_headers(POLICY))
    return response


# Dash sets itself up on a process's first request and marks that done before it is done, so the first page's
# other script requests, served by other threads meanwhile, could get 500 ("dash" is not a registered library;
# dash/dash.py _setup_server). Set up here, once per process, before any request is served.
with server.test_request_context():
    app._setup_server()

# What gunicorn serves (app.yaml): this app on gunicorn's asyncio worker, each request read whole before a thread
# runs it, so that clients sending slowly hold no thread (serving.py).
served = serving.Buffered(server)
