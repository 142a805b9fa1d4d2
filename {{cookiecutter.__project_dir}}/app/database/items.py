{%- set async_ = "async " if cookiecutter.__is_async == "True" else "" -%}
{%- set await_ = "await " if cookiecutter.__is_async == "True" else "" -%}
"""The example feature: a to-do list per signed-in user.

Every query is parameterized and filtered by owner, so a user sees and changes
only their own rows.
"""

from typing import Any

from .connection import Database

MAX_TITLE = 200


class InvalidItem(ValueError):
    """The request is refused before it reaches the database."""


def clean_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidItem("title must be a non-empty string")
    title = title.strip()
    if len(title) > MAX_TITLE:
        raise InvalidItem(f"title must be at most {MAX_TITLE} characters")
    return title


def clean_owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise InvalidItem("no signed-in user")
    return owner.strip().lower()


{{ async_ }}def list_items(db: Database, owner: str) -> list[dict[str, Any]]:
    return {{ await_ }}db.fetch_all(
        "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %(owner)s ORDER BY id",
        {"owner": clean_owner(owner)},
    )


{{ async_ }}def create_item(db: Database, owner: str, title: str) -> dict[str, Any]:
    row = {{ await_ }}db.fetch_one(
        "INSERT INTO items (owner, title) VALUES (%(owner)s, %(title)s) "
        "RETURNING id, title, done, created_at, updated_at",
        {"owner": clean_owner(owner), "title": clean_title(title)},
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return row


{{ async_ }}def update_item(db: Database, owner: str, item_id: int, title: str, done: bool) -> dict[str, Any] | None:
    """Returns the updated row, or None when the user has no item with that id."""
    return {{ await_ }}db.fetch_one(
        "UPDATE items SET title = %(title)s, done = %(done)s, updated_at = now() "
        "WHERE id = %(id)s AND owner = %(owner)s RETURNING id, title, done, created_at, updated_at",
        {"id": int(item_id), "owner": clean_owner(owner), "title": clean_title(title), "done": bool(done)},
    )


{{ async_ }}def delete_item(db: Database, owner: str, item_id: int) -> bool:
    """Returns False when the user has no item with that id."""
    deleted = {{ await_ }}db.execute(
        "DELETE FROM items WHERE id = %(id)s AND owner = %(owner)s",
        {"id": int(item_id), "owner": clean_owner(owner)},
    )
    return deleted == 1
