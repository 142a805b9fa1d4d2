"""Bare-pool baseline, Flask: the driver's own pool (pool.py, one of this directory's driver files), the rendered
app's SQL and server command (flask.yaml). Copied as main.py."""

import serving
from flask import Flask, jsonify, request
from pool import INSERT, LIST, fetch

app = Flask(__name__)


def owner():
    return (request.headers.get("X-Forwarded-Email") or "").strip().lower()


@app.get("/healthz")
def healthz():
    fetch("SELECT 1 AS one", ())
    return jsonify(database="ok")


@app.get("/api/items")
def list_items():
    return jsonify(fetch(LIST, (owner(),)))


@app.post("/api/items")
def create_item():
    return jsonify(fetch(INSERT, (owner(), request.get_json()["title"].strip()))[0]), 201


served = serving.Buffered(app)  # the rendered app's server: bodies read whole before a thread runs the app
