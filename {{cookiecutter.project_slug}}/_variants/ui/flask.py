"""{{ cookiecutter.project_name }}: JSON API and a small page, served by gunicorn."""

from typing import Any

from flask import Flask, jsonify, request

from database import database, healthy, items, problem
from database.settings import LOCAL_USER

app = Flask(__name__, static_folder="static", static_url_path="/static")


def owner() -> str:
    return request.headers.get("X-Forwarded-Email") or LOCAL_USER


def payload() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


@app.errorhandler(ValueError)
def refuse(error: ValueError) -> tuple[Any, int]:
    return jsonify(error=str(error)), 400


@app.get("/")
def page() -> Any:
    return app.send_static_file("index.html")


@app.get("/healthz")
def healthz() -> tuple[Any, int]:
    ok = healthy()
    return jsonify(database="ok" if ok else problem()), 200 if ok else 503


@app.get("/api/items")
def list_items() -> Any:
    return jsonify(items.list_items(database(), owner()))


@app.post("/api/items")
def create_item() -> tuple[Any, int]:
    return jsonify(items.create_item(database(), owner(), payload().get("title"))), 201


@app.put("/api/items/<int:item_id>")
def update_item(item_id: int) -> Any:
    body = payload()
    row = items.update_item(database(), owner(), item_id, body.get("title"), bool(body.get("done", False)))
    if row is None:
        return jsonify(error="no such item"), 404
    return jsonify(row)


@app.delete("/api/items/<int:item_id>")
def delete_item(item_id: int) -> tuple[Any, int]:
    if not items.delete_item(database(), owner(), item_id):
        return jsonify(error="no such item"), 404
    return "", 204
