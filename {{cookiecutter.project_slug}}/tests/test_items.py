{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""The example feature against a real PostgreSQL.

Needs PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD for a role that may create a
schema in that database (for example the local database of `scripts/local` or any
disposable PostgreSQL). Without them these tests are skipped, and say so.
"""

{% if is_async -%}
import asyncio
{% endif -%}
import os

import pytest

from database import Database, items, open_database
from database.credentials import password_source
from database.items import InvalidItem
from database.migrate import upgrade
from database.settings import load_settings

pytestmark = pytest.mark.skipif(
    not (os.environ.get("PGHOST") and os.environ.get("PGPASSWORD")),
    reason="no PostgreSQL configured (set PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD)",
)


{{ async_ }}def crud_round_trip(db: Database) -> None:
    settings = load_settings()
    {{ await_ }}upgrade(settings, password_source(settings))  # a second upgrade is a no-op
    alice = {{ await_ }}items.create_item(db, "alice@example.com", "  write tests  ")
    assert alice["title"] == "write tests" and alice["done"] is False
    bob = {{ await_ }}items.create_item(db, "bob@example.com", "bob's item")
    assert [row["id"] for row in {{ await_ }}items.list_items(db, "alice@example.com")][-1] == alice["id"]
    assert bob["id"] not in [row["id"] for row in {{ await_ }}items.list_items(db, "alice@example.com")]

    assert {{ await_ }}items.update_item(db, "bob@example.com", alice["id"], "stolen", True) is None
    assert not {{ await_ }}items.delete_item(db, "bob@example.com", alice["id"])
    updated = {{ await_ }}items.update_item(db, "alice@example.com", alice["id"], "tests written", True)
    assert updated is not None and updated["done"] is True and updated["title"] == "tests written"

    before = len({{ await_ }}items.list_items(db, "alice@example.com"))
    with pytest.raises(InvalidItem):
        {{ await_ }}items.create_item(db, "alice@example.com", "x" * 201)
    with pytest.raises(InvalidItem):
        {{ await_ }}items.create_item(db, "alice@example.com", "   ")
    assert len({{ await_ }}items.list_items(db, "alice@example.com")) == before

    assert {{ await_ }}items.delete_item(db, "alice@example.com", alice["id"])
    assert {{ await_ }}items.delete_item(db, "bob@example.com", bob["id"])
    assert {{ await_ }}db.ping()


{% if is_async -%}
def test_crud_round_trip_per_user() -> None:
    async def run() -> None:
        db = await open_database()
        try:
            await crud_round_trip(db)
        finally:
            await db.close()

    asyncio.run(run())
{%- else -%}
def test_crud_round_trip_per_user() -> None:
    db = open_database()
    try:
        crud_round_trip(db)
    finally:
        db.close()
{%- endif %}
