"""Round trips and statements per driver x operation of the example feature, measured on the wire.

Usage, from the repository root:
    .venv/bin/python -m bench.round_trips                  # prints the markdown table (about 30 s)
    .venv/bin/python -m bench.round_trips --write-results  # ... and puts it in bench/RESULTS.md

Each driver's rendered Database and items feature run against the harness PostgreSQL through a counting proxy
(tests/support/pg_trace.py, in the app's process): a round trip is a flight of messages the client sends after
an answer, a statement a Query or Execute message. Each operation runs once to warm up (asyncpg prepares a
statement on its first use), then once measured, on a pool of one connection. tests/test_round_trips.py holds
the same numbers.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from tests.harness.postgres import PostgresServer
from tests.support.deployer import migrated
from tests.support.round_trips import FRAMEWORK, OPERATIONS, measure
from tests.support.template import render

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = re.compile(r"<!-- round_trips -->\n.*?<!-- end round_trips -->\n", re.S)

# The fewest round trips with the same guarantees (RLS on every call; a write never applied twice nor lost: its key
# recorded with it by a function of migration 0005, found by a retry), and how each driver reaches it.
READ_FLOOR = "the user's setting goes with the read"
WRITE_FLOOR = (
    "create_item, update_item, delete_item (migration 0005) set the user, apply the write once by its key and "
    "commit, in one statement"
)
FLOOR = {
    ("psycopg3", "read"): (1, f"1: {READ_FLOOR} (one pipeline, one Sync)"),
    ("sqlalchemy", "read"): (1, f"1: {READ_FLOOR} (psycopg's pipeline below SQLAlchemy)"),
    ("psycopg2", "read"): (1, f"1: {READ_FLOOR} (one simple query with both statements)"),
    ("asyncpg", "read"): (1, "1: items_for(user) sets the user and reads in one statement (migration 0004)"),
    ("psycopg3", "write"): (1, f"1: {WRITE_FLOOR}"),
    ("sqlalchemy", "write"): (1, f"1: {WRITE_FLOOR}"),
    ("psycopg2", "write"): (1, f"1: {WRITE_FLOOR}"),
    ("asyncpg", "write"): (1, f"1: {WRITE_FLOOR}"),
}


def table(measured: dict[str, dict[str, tuple]]) -> str:
    lines = [
        "| driver | operation | round trips | statements | floor, and why no fewer |",
        "| --- | --- | --- | --- | --- |",
    ]
    for driver, ops in measured.items():
        for op in OPERATIONS:
            trips, statements = ops[op][0], ops[op][1]
            floor, why = FLOOR[(driver, "read" if op in ("list", "get") else "write")]
            mark = "" if trips == floor else f" (floor {floor})"
            lines.append(f"| {driver} | {op} | {trips}{mark} | {statements} | {why} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-results", action="store_true", help="put the table in bench/RESULTS.md")
    args = parser.parse_args(argv)
    measured: dict[str, dict[str, tuple]] = {}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(tls=True) as pg:
        for driver, framework in FRAMEWORK.items():
            home = Path(tmp) / driver
            home.mkdir()
            app = render(home, framework=framework, driver=driver) / "app"
            _, env, _ = migrated(pg, home, app)
            measured[driver] = measure(app, env, driver, pg)
    text = table(measured)
    print(text)
    if args.write_results:
        section = (
            "<!-- round_trips -->\n## Round trips per call (`python -m bench.round_trips`)\n\n"
            "Steady state (after one warm-up call), one connection, measured on the wire by tests/support/pg_trace.py. "
            "Statements: Query and Execute messages (psycopg2's one Query may hold two statements).\n\n"
            f"{text}<!-- end round_trips -->\n"
        )
        old = RESULTS.read_text() if RESULTS.exists() else ""
        RESULTS.write_text(SECTION.sub(section, old) if SECTION.search(old) else old.rstrip("\n") + "\n\n" + section)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
