"""{{ cookiecutter.project_name }}: JSON API and a small page, served by gunicorn. The API contract is in README.md."""

from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

import items
import json_api
from database import DatabaseBusy, database, healthy, problem
from identity import NotSignedIn, current_user
from items.rules import InvalidItem

app = Flask(__name__, static_folder="static", static_url_path="/static")


def refuse(status: int, message: str, field: str | None = None) -> tuple[Any, int]:
    return jsonify(json_api.error_body(message, field)), status


@app.errorhandler(json_api.BadRequest)
@app.errorhandler(InvalidItem)
def invalid(error: json_api.BadRequest | InvalidItem) -> tuple[Any, int]:
    return refuse(400, str(error), error.field)


@app.errorhandler(NotSignedIn)
def not_signed_in(error: NotSignedIn) -> tuple[Any, int]:
    return refuse(401, str(error))


@app.errorhandler(DatabaseBusy)
def busy(error: DatabaseBusy) -> tuple[Any, int, dict[str, str]]:
    return *refuse(503, "the database is busy: try again shortly"), {"Retry-After": str(error.retry_after)}


@app.errorhandler(HTTPException)
def http_error(error: HTTPException) -> tuple[Any, int]:  # unknown path, wrong method: the same error shape
    return refuse(error.code or 500, error.description or error.name)


def body(*names: str) -> list[Any]:
    return json_api.fields(request.get_json(force=True, silent=True), *names)  # malformed JSON: None, refused


@app.get("/")
def page() -> Any:
    return app.send_static_file("index.html")


@app.get("/healthz")
def healthz() -> tuple[Any, int]:
    ok = healthy()
    return jsonify(database="ok" if ok else problem()), 200 if ok else 503


@app.get("/api/items")
def list_items() -> Any:
    return jsonify(items.list_items(database(), current_user(request.headers)))


@app.post("/api/items")
def create_item() -> tuple[Any, int]:
    owner = current_user(request.headers)
    (title,) = body("title")
    return jsonify(items.create_item(database(), owner, title)), 201


@app.put("/api/items/<item_id>")
def update_item(item_id: str) -> Any:
    owner = current_user(request.headers)
    title, done = body("title", "done")
    item = items.update_item(database(), owner, item_id, title, done)
    return jsonify(item) if item else refuse(404, "no such item", "id")


@app.delete("/api/items/<item_id>")
def delete_item(item_id: str) -> Any:
    if not items.delete_item(database(), current_user(request.headers), item_id):
        return refuse(404, "no such item", "id")
    return "", 204
