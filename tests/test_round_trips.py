"""Round trips and statements per driver and operation of the example feature, measured on the wire.

Each driver's rendered Database and items feature, on the harness PostgreSQL through a counting proxy
(tests/support/pg_trace.py), after a warm-up call: a read for a user costs one round trip on every driver,
with row-level security still deciding (tests/test_row_security.py); a write costs the fewest its driver
allows with the lost-COMMIT guarantee (its transaction id reaches the app before COMMIT is sent):
- psycopg3, sqlalchemy: 2 (BEGIN, the id and the write pipelined; COMMIT);
- psycopg2: 3 (BEGIN and the id in one simple query; the write; COMMIT: no pipeline);
- asyncpg: 4 (BEGIN; the id; the write; COMMIT: one statement per round trip, and BEGIN cannot share one).
And the guarantee still holds with those fewer round trips: a COMMIT whose answer is lost (the proxy cuts the
connection once the COMMIT reached the server) is found committed, and not applied again.
bench/round_trips.py prints the same measurement as a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.deployer import migrated
from tests.support.round_trips import FRAMEWORK, OPERATIONS, lost_commit, measure
from tests.support.template import render

READ_TRIPS = 1
WRITE_TRIPS = {"psycopg3": 2, "sqlalchemy": 2, "psycopg2": 3, "asyncpg": 4}
# Statements sent (Query and Execute messages): a read's setting is a statement of its own on psycopg 3 (in the
# same pipeline), shares psycopg2's one Query, and is inside items_for() on asyncpg; a write is BEGIN, the id,
# the write and COMMIT, BEGIN and the id sharing one Query on psycopg2.
READ_STATEMENTS = {"psycopg3": 2, "sqlalchemy": 2, "psycopg2": 1, "asyncpg": 1}
WRITE_STATEMENTS = {"psycopg3": 4, "sqlalchemy": 4, "psycopg2": 3, "asyncpg": 4}


@pytest.mark.parametrize("driver", list(FRAMEWORK))
def test_each_operation_costs_the_fewest_round_trips_its_driver_allows(
    driver: str, tmp_path: Path, pg_server: Any
) -> None:
    app = render(tmp_path, framework=FRAMEWORK[driver], driver=driver) / "app"
    _, env, _ = migrated(pg_server, tmp_path, app)
    measured = measure(app, env, driver, pg_server)
    reads = ("list", "get")
    expected = {
        op: (READ_TRIPS, READ_STATEMENTS[driver]) if op in reads else (WRITE_TRIPS[driver], WRITE_STATEMENTS[driver])
        for op in OPERATIONS
    }
    assert {op: measured[op][:2] for op in OPERATIONS} == expected, measured


@pytest.mark.parametrize("driver", list(FRAMEWORK))
def test_a_write_whose_commit_answer_is_lost_is_applied_once(driver: str, tmp_path: Path, pg_server: Any) -> None:
    """The fewer round trips keep the guarantee: the transaction id reached the app before COMMIT was sent, so when
    the connection dies with the COMMIT's answer, pg_xact_status says it committed, and it is not run again."""
    app = render(tmp_path, framework=FRAMEWORK[driver], driver=driver) / "app"
    _, env, _ = migrated(pg_server, tmp_path, app)
    outcome = lost_commit(app, env, driver, pg_server)
    assert outcome == {"made": "once", "titles": ["before", "once"], "cuts": 1}, outcome
