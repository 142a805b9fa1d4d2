{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
{%- if cookiecutter.framework == "flask" -%}
"""The items feature's JSON API, a Flask blueprint that main.py registers (``app.register_blueprint``).

Refused input raises an ``InputError`` (``rules.InvalidItem``, ``rules.NoSuchItem``...): the app answers it in its
one error body, so this file has no error handler. The API contract is in README.md.
"""

from typing import Any

from flask import Blueprint, jsonify, request

import items
import json_api
from database import database
from identity import current_user

from .rules import NoSuchItem

blueprint = Blueprint("items", __name__)


@blueprint.get("/api/items")
def list_items() -> Any:
    after, limit = request.args.get("after"), request.args.get("limit")
    page, next_after = items.list_page(database(), current_user(request.headers), after, limit)
    return jsonify(page), json_api.next_page_link("/api/items", next_after, limit)


@blueprint.get("/api/items/<item_id>")
def get_item(item_id: str) -> Any:
    item = items.get_item(database(), current_user(request.headers), item_id)
    if item is None:
        raise NoSuchItem
    return jsonify(item)


@blueprint.post("/api/items")
def create_item() -> tuple[Any, int]:
    owner = current_user(request.headers)
    (title,) = json_api.body_fields("title")
    return jsonify(items.create_item(database(), owner, title)), 201


@blueprint.put("/api/items/<item_id>")
def update_item(item_id: str) -> Any:
    owner = current_user(request.headers)
    title, done = json_api.body_fields("title", "done")
    item = items.update_item(database(), owner, item_id, title=title, done=done)
    if item is None:
        raise NoSuchItem
    return jsonify(item)


@blueprint.delete("/api/items/<item_id>")
def delete_item(item_id: str) -> Any:
    if not items.delete_item(database(), current_user(request.headers), item_id):
        raise NoSuchItem
    return "", 204
{%- else -%}
"""The items feature's JSON API, a FastAPI router that main.py includes (``app.include_router``).

Refused input raises an ``InputError`` (``rules.InvalidItem``, ``rules.NoSuchItem``...): the app answers it in its
one error body, so this file has no error handler. The API contract is in README.md.
"""

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

import items
from json_api import Db, User, next_page_link, problems

from .rules import MAX_TITLE, NoSuchItem

router = APIRouter()


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # like the Flask API: no unknown field, no coercion
    title: str = Field(description=f"1 to {MAX_TITLE} characters after trimming, no control characters")


class ItemChange(NewItem):
    done: bool


class Item(BaseModel):
    id: int
    title: str
    done: bool
    created_at: str = Field(description="ISO 8601, UTC", examples=["2026-11-29T10:15:00.123456+00:00"])
    updated_at: str = Field(description="ISO 8601, UTC")


@router.get("/api/items", responses=problems(400, 401, 503))
{{ async_ }}def list_items(
    owner: User, db: Db, response: Response, after: str | None = None, limit: str | None = None
) -> list[Item]:
    """One page of the signed-in user's items, oldest first (at most 100, `limit` for fewer, after the item
    `after`); a `Link: <...>; rel="next"` header names the next page, and the last page has none."""
    page, next_after = {{ await_ }}items.list_page(db, owner, after, limit)  # the query is checked there
    response.headers.update(next_page_link("/api/items", next_after, limit))
    return page  # dicts of Item's shape: FastAPI checks and documents them


@router.get("/api/items/{item_id}", responses=problems(400, 401, 404, 503))
{{ async_ }}def get_item(item_id: str, owner: User, db: Db) -> Item:
    item = {{ await_ }}items.get_item(db, owner, item_id)
    if item is None:
        raise NoSuchItem
    return item


@router.post("/api/items", status_code=201, responses=problems(400, 401, 403, 409, 413, 415, 503))
{{ async_ }}def create_item(body: NewItem, owner: User, db: Db) -> Item:
    return {{ await_ }}items.create_item(db, owner, body.title)


@router.put("/api/items/{item_id}", responses=problems(400, 401, 403, 404, 413, 415, 503))
{{ async_ }}def update_item(item_id: str, body: ItemChange, owner: User, db: Db) -> Item:
    item = {{ await_ }}items.update_item(db, owner, item_id, title=body.title, done=body.done)
    if item is None:
        raise NoSuchItem
    return item


@router.delete("/api/items/{item_id}", status_code=204, responses=problems(400, 401, 403, 404, 503))
{{ async_ }}def delete_item(item_id: str, owner: User, db: Db) -> Response:
    if not {{ await_ }}items.delete_item(db, owner, item_id):
        raise NoSuchItem
    return Response(status_code=204)
{%- endif %}
