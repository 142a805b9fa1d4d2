"""Connect-per-request baseline: psycopg.connect() in every request (libpq reads PG*, PGPASSWORD)."""

import psycopg
import serving
from flask import Flask, jsonify, request
from psycopg.rows import dict_row

app = Flask(__name__)


def connect():
    return psycopg.connect(options="-c search_path=app_data", row_factory=dict_row)


def owner():
    return (request.headers.get("X-Forwarded-Email") or "local.user@example.com").strip().lower()


@app.get("/healthz")
def healthz():
    with connect() as conn:
        conn.execute("SELECT 1")
    return jsonify(database="ok")


@app.get("/api/items")
def list_items():
    with connect() as conn:
        rows = conn.execute(
            "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %(owner)s ORDER BY id",
            {"owner": owner()},
        ).fetchall()
    return jsonify(rows)


@app.post("/api/items")
def create_item():
    with connect() as conn:
        row = conn.execute(
            "INSERT INTO items (owner, title) VALUES (%(owner)s, %(title)s) "
            "RETURNING id, title, done, created_at, updated_at",
            {"owner": owner(), "title": request.get_json()["title"].strip()},
        ).fetchone()
    return jsonify(row), 201


served = serving.Buffered(app)  # the rendered app's server (flask.yaml)
