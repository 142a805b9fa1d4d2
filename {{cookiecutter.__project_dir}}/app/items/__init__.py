{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
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
from .rules import MAX_ITEMS, TooManyItems, clean_after, clean_done, clean_id, clean_limit, clean_owner, clean_title

Item = dict[str, Any]
KEEP: Any = object()  # an update_item field left as it is


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _public(row: dict[str, Any]) -> Item:
    return {**row, "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"])}


{{ async_ }}def list_items(db: Database, owner: str) -> list[Item]:
    """All the user's items, oldest first: at most MAX_ITEMS, what a UI shows at once (the JSON API pages)."""
    owner = clean_owner(owner)
    rows = {{ await_ }}db.fetch_all(queries.LIST_ITEMS, {"owner": owner}, user=owner)
    return [_public(row) for row in rows]


Page = tuple[list[Item], int | None]  # the items, and the cursor of the next page (None: this is the last)


{{ async_ }}def list_page(db: Database, owner: str, after: object = None, limit: object = None) -> Page:
    """One page of the user's items, oldest first, after the item with id `after`; and the cursor of the next
    page (the last item's id), None on the last page. Keyset paging: inserts and deletes never shift a page."""
    owner, size = clean_owner(owner), clean_limit(limit)
    params = {"owner": owner, "after": clean_after(after), "limit": size + 1}  # one more: is there a next page?
    rows = {{ await_ }}db.fetch_all(queries.LIST_PAGE, params, user=owner)
    page = [_public(row) for row in rows[:size]]
    return page, (page[-1]["id"] if len(rows) > size else None)


{{ async_ }}def get_item(db: Database, owner: str, item_id: object) -> Item | None:
    """The user's item with that id; None when the user has none."""
    params = {"id": clean_id(item_id), "owner": clean_owner(owner)}
    row = {{ await_ }}db.fetch_one(queries.GET_ITEM, params, user=params["owner"])
    return _public(row) if row else None


{{ async_ }}def create_item(db: Database, owner: str, title: object) -> Item:
    """The new item; TooManyItems when the user already keeps MAX_ITEMS (checked by the INSERT itself)."""
    params = {"owner": clean_owner(owner), "title": clean_title(title), "max_items": MAX_ITEMS}
    row = {{ await_ }}db.write_one(queries.CREATE_ITEM, params, user=params["owner"])
    if row is None:  # the INSERT ... SELECT found the user at the cap and inserted nothing
        raise TooManyItems()
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
