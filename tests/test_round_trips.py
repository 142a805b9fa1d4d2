"""Round trips and statements per driver and operation of the example feature, measured on the wire.

Each driver's rendered Database and items feature, on the harness PostgreSQL through a counting proxy
(tests/support/pg_trace.py), after a warm-up call: a read for a user costs one round trip on every driver,
with row-level security still deciding (tests/test_row_security.py); so does a write, on every driver: it calls
create_item, update_item or delete_item (migration 0005), which set the user, apply the write once by its key
and commit, in one statement. And the guarantee still holds with that one round trip: a write whose answer is
lost (the proxy cuts the connection once its statement reached the server) is found applied when it is sent again
with its key, and not applied again. bench/round_trips.py prints the same measurement as a table.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.deployer import migrated
from tests.support.round_trips import FRAMEWORK, OPERATIONS, lost_commit, measure
from tests.support.template import render

READ_TRIPS = 1
WRITE_TRIPS = 1
# Statements sent (Query and Execute messages): a read's setting is a statement of its own on psycopg 3 (in the
# same pipeline), shares psycopg2's one Query, and is inside items_for() on asyncpg; a write is one function call.
READ_STATEMENTS = {"psycopg3": 2, "sqlalchemy": 2, "psycopg2": 1, "asyncpg": 1}
WRITE_STATEMENTS = 1


@pytest.mark.parametrize("driver", list(FRAMEWORK))
def test_each_operation_costs_the_fewest_round_trips_its_driver_allows(
    driver: str, tmp_path: Path, pg_server: Any
) -> None:
    app = render(tmp_path, framework=FRAMEWORK[driver], driver=driver) / "app"
    _, env, _ = migrated(pg_server, tmp_path, app)
    measured = measure(app, env, driver, pg_server)
    reads = ("list", "get")
    expected = {
        op: (READ_TRIPS, READ_STATEMENTS[driver]) if op in reads else (WRITE_TRIPS, WRITE_STATEMENTS)
        for op in OPERATIONS
    }
    assert {op: measured[op][:2] for op in OPERATIONS} == expected, measured


@pytest.mark.parametrize("driver", list(FRAMEWORK))
def test_a_write_whose_commit_answer_is_lost_is_applied_once(driver: str, tmp_path: Path, pg_server: Any) -> None:
    """One round trip keeps the guarantee: the write's one statement is sent again with its key on a fresh
    connection, and create_item finds the key applied: the item it made, not a second one."""
    app = render(tmp_path, framework=FRAMEWORK[driver], driver=driver) / "app"
    _, env, _ = migrated(pg_server, tmp_path, app)
    outcome = lost_commit(app, env, driver, pg_server)
    assert outcome == {"made": "once", "titles": ["before", "once"], "cuts": 1}, outcome


def test_the_write_functions_apply_a_key_once_even_while_its_first_try_still_runs(
    tmp_path: Path, pg_server: Any
) -> None:
    """create_item, update_item and delete_item (migration 0005), called as the app's role, the way a retry after a
    lost answer calls them: the same key again changes nothing and answers with what the write left; a second try
    sent while the first is still open waits for it and then finds the key; another user's call sees none of it."""
    app = render(tmp_path, framework="fastapi", driver="asyncpg") / "app"
    _, env, _ = migrated(pg_server, tmp_path, app)
    connect = {
        "host": env["PGHOST"], "port": env["PGPORT"], "user": env["PGUSER"], "password": env["PGPASSWORD"],
        "dbname": env["PGDATABASE"], "sslmode": env.get("PGSSLMODE", "prefer"), "sslrootcert": env.get("PGSSLROOTCERT"),
    }  # fmt: skip
    alice, bob = "alice@example.com", "bob@example.com"
    made_key, changed_key, deleted_key, raced_key = (uuid.uuid4() for _ in range(4))
    with psycopg.connect(**{k: v for k, v in connect.items() if v}, autocommit=True) as conn:

        def call(sql: str, *args: Any) -> list[tuple[Any, ...]]:
            return conn.execute(sql, args).fetchall()

        create = "SELECT id, title, done FROM app_data.create_item(%s, %s, %s, 100)"
        (made,) = call(create, alice, made_key, "first")
        assert call(create, alice, made_key, "first") == [made]  # the retry: the same item, not a second one
        update = "SELECT id, title, done, updated_at FROM app_data.update_item(%s, %s, %s, %s, %s)"
        (changed,) = call(update, alice, changed_key, made[0], "changed", True)
        assert call(update, alice, changed_key, made[0], "changed", True) == [changed]  # updated_at kept: not again
        (other,) = call(create, alice, uuid.uuid4(), "doomed")
        delete = "SELECT app_data.delete_item(%s, %s, %s)"
        assert call(delete, alice, deleted_key, other[0]) == [(1,)]
        assert call(delete, alice, deleted_key, other[0]) == [(1,)]  # the retry learns it was deleted
        assert call(delete, bob, uuid.uuid4(), made[0]) == [(0,)]  # not bob's to delete
        assert call("SELECT count(*) FROM app_data.applied_writes") == [(0,)]  # no user set: no key to be seen
        assert call("SELECT count(*) FROM app_data.items") == [(0,)]

        # A first try whose transaction is still open (as on a backend that has not yet noticed its client left):
        # the second waits on the key, and once the first commits it applies nothing.
        with psycopg.connect(**{k: v for k, v in connect.items() if v}) as first:
            first.execute(create, (alice, raced_key, "raced"))
            second = threading.Thread(target=lambda: results.append(call(create, alice, raced_key, "raced")))
            results: list[list[tuple[Any, ...]]] = []
            second.start()
            second.join(1.0)
            assert second.is_alive()  # waiting on the key's unique index
            first.commit()
        second.join(30)
        titles = call("SELECT title FROM app_data.items_for(%s) ORDER BY id", alice)
    assert [row[1] for row in results[0]] == ["raced"] and titles == [("changed",), ("raced",)], (results, titles)
