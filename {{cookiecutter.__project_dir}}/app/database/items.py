{%- set async_ = "async " if cookiecutter.__is_async == "True" else "" -%}
{%- set await_ = "await " if cookiecutter.__is_async == "True" else "" -%}
"""The example feature: a to-do list per signed-in user.

Every input is checked here before any SQL runs, so refused input never reaches the database and
never changes a row; ``InvalidItem`` names the field. Every call is made for the signed-in user
(``user=``), and PostgreSQL's row-level security (migration 0002) shows that call only that user's
rows, even to a query that forgot its owner filter. The queries keep the filter all the same: they
say on their own whose rows they read, and they still hold for a role that bypasses row security
(a superuser, or BYPASSRLS). Every query is parameterized. Items come back as the API contract
(README) shows them: timestamps as ISO 8601 strings in UTC.
"""

from datetime import UTC, datetime
from typing import Any

from . import queries
from .connection import Database

MAX_TITLE = 200
MAX_ID = 2**63 - 1  # ids are PostgreSQL bigint

Item = dict[str, Any]


class InvalidItem(ValueError):
    """Input refused before it reaches the database; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def clean_title(title: object) -> str:
    if not isinstance(title, str):
        raise InvalidItem("title", "title must be a string")
    title = title.strip()
    if not title:
        raise InvalidItem("title", "title must not be empty")
    if len(title) > MAX_TITLE:
        raise InvalidItem("title", f"title must be at most {MAX_TITLE} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in title):  # NUL would not even reach PostgreSQL text
        raise InvalidItem("title", "title must not contain control characters such as NUL or line breaks")
    try:
        title.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. JSON "\ud800"
        raise InvalidItem("title", "title must be valid Unicode text") from None
    return title


def clean_done(done: object) -> bool:
    if not isinstance(done, bool):
        raise InvalidItem("done", "done must be true or false")
    return done


def clean_id(item_id: object) -> int:
    """An item id from a URL segment or a UI component: a whole number within bigint."""
    if isinstance(item_id, str) and item_id.isascii() and item_id.isdigit() and len(item_id) <= 19:
        item_id = int(item_id)
    if isinstance(item_id, bool) or not isinstance(item_id, int) or not 1 <= item_id <= MAX_ID:
        raise InvalidItem("id", f"id must be a whole number from 1 to {MAX_ID}")
    return item_id


def clean_owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise InvalidItem("user", "no signed-in user")
    return owner.strip().lower()


def fields(body: object, *names: str) -> list[Any]:
    """The values of exactly these fields of a JSON request body, in order."""
    if not isinstance(body, dict):
        raise InvalidItem("body", "the request body must be a JSON object")
    for name in body:
        if name not in names:
            raise InvalidItem(str(name), f"unknown field {name!r}")
    for name in names:
        if name not in body:
            raise InvalidItem(name, f"{name} is required")
    return [body[name] for name in names]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _public(row: dict[str, Any]) -> Item:
    return {**row, "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"])}


{{ async_ }}def list_items(db: Database, owner: str) -> list[Item]:
    owner = clean_owner(owner)
    rows = {{ await_ }}db.fetch_all(queries.LIST_ITEMS, {"owner": owner}, user=owner)
    return [_public(row) for row in rows]


{{ async_ }}def create_item(db: Database, owner: str, title: object) -> Item:
    params = {"owner": clean_owner(owner), "title": clean_title(title)}
    row = {{ await_ }}db.write_one(queries.CREATE_ITEM, params, user=params["owner"])
    assert row is not None  # INSERT ... RETURNING always returns the row
    return _public(row)


{{ async_ }}def update_item(db: Database, owner: str, item_id: object, title: object, done: object) -> Item | None:
    """Returns the updated item, or None when the user has no item with that id."""
    params = {
        "id": clean_id(item_id),
        "owner": clean_owner(owner),
        "title": clean_title(title),
        "done": clean_done(done),
    }
    row = {{ await_ }}db.write_one(queries.UPDATE_ITEM, params, user=params["owner"])
    return _public(row) if row else None


{{ async_ }}def set_done(db: Database, owner: str, item_id: object, done: object) -> Item | None:
    """Marks an item done or not; None when the user has no item with that id."""
    params = {"id": clean_id(item_id), "owner": clean_owner(owner), "done": clean_done(done)}
    row = {{ await_ }}db.write_one(queries.SET_DONE, params, user=params["owner"])
    return _public(row) if row else None


{{ async_ }}def delete_item(db: Database, owner: str, item_id: object) -> bool:
    """Returns False when the user has no item with that id."""
    params = {"id": clean_id(item_id), "owner": clean_owner(owner)}
    return {{ await_ }}db.execute(queries.DELETE_ITEM, params, user=params["owner"]) == 1
