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

from database import Database

from . import queries
from .rules import clean_done, clean_id, clean_owner, clean_title  # the checks, and InvalidItem

Item = dict[str, Any]
KEEP: Any = object()  # an update_item field left as it is


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


{{ async_ }}def update_item(db: Database, owner: str, item_id: object, *, title: Any = KEEP, done: Any = KEEP) -> Item | None:
    """Changes the title, done or both (what is not given stays); None when the user has no item with that id."""
    params = {
        "id": clean_id(item_id),
        "owner": clean_owner(owner),
        "title": None if title is KEEP else clean_title(title),  # NULL keeps the column (COALESCE in the SQL)
        "done": None if done is KEEP else clean_done(done),
    }
    row = {{ await_ }}db.write_one(queries.UPDATE_ITEM, params, user=params["owner"])
    return _public(row) if row else None


{{ async_ }}def delete_item(db: Database, owner: str, item_id: object) -> bool:
    """Returns False when the user has no item with that id."""
    params = {"id": clean_id(item_id), "owner": clean_owner(owner)}
    return {{ await_ }}db.execute(queries.DELETE_ITEM, params, user=params["owner"]) == 1
