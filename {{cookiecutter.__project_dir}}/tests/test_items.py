{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""The example feature against a real PostgreSQL.

Needs PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD for a role that may create a
schema in that database: `./run-local.sh test` sets them for the embedded PostgreSQL of
`local/run.py`; any disposable PostgreSQL works too. Without them these tests are skipped, and say so.
"""

{% if is_async -%}
import asyncio
{% endif -%}
import os

import pytest

import items
from database import Database, open_database
from database.credentials import password_source
from database.migrate import upgrade
from database.settings import load_settings
from items.rules import InvalidItem

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

    assert {{ await_ }}items.update_item(db, "bob@example.com", alice["id"], title="stolen", done=True) is None
    assert not {{ await_ }}items.delete_item(db, "bob@example.com", alice["id"])
    updated = {{ await_ }}items.update_item(db, "alice@example.com", alice["id"], title="tests written", done=True)
    assert updated is not None and updated["done"] is True and updated["title"] == "tests written"

    assert updated["created_at"].endswith("+00:00") and updated["updated_at"] >= updated["created_at"]  # ISO 8601, UTC
    assert {{ await_ }}items.update_item(db, "bob@example.com", alice["id"], done=False) is None
    done = {{ await_ }}items.update_item(db, "alice@example.com", alice["id"], done=False)
    assert done is not None and done["done"] is False and done["title"] == "tests written"
    renamed = {{ await_ }}items.update_item(db, "alice@example.com", alice["id"], title="renamed")
    assert renamed is not None and renamed["done"] is False and renamed["title"] == "renamed"  # done kept

    before = {{ await_ }}items.list_items(db, "alice@example.com")
    for title in ("x" * 201, "   ", "a\x00b", 5):
        with pytest.raises(InvalidItem) as refused:
            {{ await_ }}items.create_item(db, "alice@example.com", title)
        assert refused.value.field == "title"
    for item_id in (2**63, 0, "1e3", True):
        with pytest.raises(InvalidItem) as refused:
            {{ await_ }}items.delete_item(db, "alice@example.com", item_id)
        assert refused.value.field == "id"
    with pytest.raises(InvalidItem) as refused:
        {{ await_ }}items.update_item(db, "alice@example.com", alice["id"], done="false")
    assert refused.value.field == "done"
    assert {{ await_ }}items.list_items(db, "alice@example.com") == before  # refused input changed no row

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
