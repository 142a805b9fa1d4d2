{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""The example feature against a real PostgreSQL.

Needs PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD for the app's role, on a database migrated
for it (`python -m database.migrate upgrade --app-role <that role>`, as the owner): `./run-local.sh test`
does both for the embedded PostgreSQL of `local/run.py`. Without them these tests are skipped, and say so.
"""

{% if is_async -%}
import asyncio
{% endif -%}
import os

import pytest

import items
from database import Database, open_database
from items import queries
from items.rules import MAX_ITEMS, InvalidItem, TooManyItems

pytestmark = pytest.mark.skipif(
    not (os.environ.get("PGHOST") and os.environ.get("PGPASSWORD")),
    reason="no PostgreSQL configured (set PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD)",
)


{{ async_ }}def crud_round_trip(db: Database) -> None:
    alice = {{ await_ }}items.create_item(db, "alice@example.com", "  write tests  ")
    assert alice["title"] == "write tests" and alice["done"] is False
    bob = {{ await_ }}items.create_item(db, "bob@example.com", "bob's item")
    assert [row["id"] for row in {{ await_ }}items.list_items(db, "alice@example.com")][-1] == alice["id"]
    assert bob["id"] not in [row["id"] for row in {{ await_ }}items.list_items(db, "alice@example.com")]

    assert {{ await_ }}items.update_item(db, "bob@example.com", alice["id"], title="stolen", done=True) is None
    assert not {{ await_ }}items.delete_item(db, "bob@example.com", alice["id"])
    assert {{ await_ }}items.get_item(db, "bob@example.com", alice["id"]) is None  # another user's: as if none
    assert {{ await_ }}items.get_item(db, "alice@example.com", alice["id"]) == alice
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


{{ async_ }}def pages_and_the_item_cap(db: Database) -> None:
    carol = "carol@example.com"
    made = [({{ await_ }}items.create_item(db, carol, f"item {n}"))["id"] for n in range(5)]
    pages, after = [], None
    while True:  # keyset pages of 2: [0, 1], [2, 3], [4]; the last page has no cursor
        page, after = {{ await_ }}items.list_page(db, carol, after, "2")
        pages.append([item["id"] for item in page])
        if after is None:
            break
    assert pages == [made[0:2], made[2:4], made[4:5]]
    assert ({{ await_ }}items.list_page(db, carol))[0][-1]["id"] == made[-1]  # the default page holds them all
    for bad, field in (({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"after": "-1"}, "after")):
        with pytest.raises(InvalidItem) as refused:
            {{ await_ }}items.list_page(db, carol, **bad)
        assert refused.value.field == field

    items.MAX_ITEMS = 6  # the cap, lowered for the test: one more fits, the next is refused and changes nothing
    try:
        {{ await_ }}items.create_item(db, carol, "the sixth")
        with pytest.raises(TooManyItems):
            {{ await_ }}items.create_item(db, carol, "the seventh")
    finally:
        items.MAX_ITEMS = MAX_ITEMS
    assert len({{ await_ }}items.list_items(db, carol)) == 6
    for item in {{ await_ }}items.list_items(db, carol):
        assert {{ await_ }}items.delete_item(db, carol, item["id"])


{{ async_ }}def a_write_picks_neither_user_nor_key(db: Database) -> None:
    dave = "dave@example.com"  # the app fills in app_user (the call's user) and write_key (a new key per call)
    params = {"owner": dave, "title": "mine", "max_items": MAX_ITEMS}
    for carried in ({"app_user": "erin@example.com"}, {"write_key": "00000000-0000-0000-0000-000000000000"}):
        with pytest.raises(ValueError, match="name yours differently"):
            {{ await_ }}db.write_one(queries.CREATE_ITEM, {**params, **carried}, user=dave)
    assert {{ await_ }}items.list_items(db, dave) == [] and {{ await_ }}items.list_items(db, "erin@example.com") == []


@pytest.mark.parametrize("scenario", [crud_round_trip, pages_and_the_item_cap, a_write_picks_neither_user_nor_key])
{% if is_async -%}
def test_items_against_postgres(scenario) -> None:
    async def run() -> None:
        db = await open_database()
        try:
            await scenario(db)
        finally:
            await db.close()

    asyncio.run(run())
{%- else -%}
def test_items_against_postgres(scenario) -> None:
    db = open_database()
    try:
        scenario(db)
    finally:
        db.close()
{%- endif %}
