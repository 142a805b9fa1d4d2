"""Round trips and statements of each operation of the example feature, measured on the wire.

A rendered app's own Database and items feature run in the app's python; its connections go through
``pg_trace.Tracer`` (started in that process) to the harness PostgreSQL. Each operation runs once to warm up
(asyncpg prepares a statement on its first use per connection), then once measured. The pool holds one
connection, so the measured call finds what the warm-up left on it. Used by tests/test_round_trips.py and
bench/round_trips.py.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from tests.support.in_app import run_with_database

OPERATIONS = ("list", "get", "create", "update", "delete")
FRAMEWORK = {"psycopg3": "flask", "psycopg2": "flask", "asyncpg": "fastapi", "sqlalchemy": "flask"}

_IMPORTS = """
import json, os, sys
sys.path.insert(0, {support!r})
import items
from pg_trace import Tracer
tracer = Tracer({backend}).start()
os.environ["PGPORT"] = str(tracer.port)
"""

_MEASURE = """
user = "round.trips@example.com"
results = {{}}
{async_}def measure(name, call):
    {await_}call()  # warm-up: asyncpg prepares here
    before, seen = tracer.totals(), len(tracer.flights())
    {await_}call()
    spent = tracer.totals() - before
    results[name] = [spent.flights, spent.statements, tracer.flights()[seen:]]
first = {await_}items.create_item(db, user, "first")
doomed = iter([({await_}items.create_item(db, user, "doomed"))["id"] for _ in range(2)])
{await_}measure("list", lambda: items.list_page(db, user))
{await_}measure("get", lambda: items.get_item(db, user, first["id"]))
{await_}measure("create", lambda: items.create_item(db, user, "more"))
{await_}measure("update", lambda: items.update_item(db, user, first["id"], title="changed", done=True))
{await_}measure("delete", lambda: items.delete_item(db, user, next(doomed)))
assert {await_}items.get_item(db, user, first["id"]) is not None
print(json.dumps(results))
"""


_LOST_COMMIT = """
user = "lost.commit@example.com"
{await_}items.create_item(db, user, "before")  # the pool's connection is open, its statements prepared
tracer.cut_next_call("create_item(")  # a create is one statement (migration 0005): its answer is lost
made = {await_}items.create_item(db, user, "once")
after = {await_}items.list_items(db, user)
print(json.dumps({{"made": made["title"], "titles": [item["title"] for item in after], "cuts": tracer.cuts}}))
"""


def backend_port(pg_server: Any) -> int:
    """The harness PostgreSQL's port that speaks the protocol in clear (behind tls_proxy.py, if it runs one)."""
    return pg_server.server_port if pg_server.tls_via == "proxy" else pg_server.port


def _run(app: Path, env: dict[str, str], driver: str, pg_server: Any, code: str, pool: int = 1) -> Any:
    env = {**env, "PGSSLMODE": "disable", "DB_POOL_MAX_SIZE": str(pool), "DB_POOL_MIN_SIZE": "1"}
    env.pop("PGSSLROOTCERT", None)
    is_async = driver == "asyncpg"
    code = code.format(async_="async " if is_async else "", await_="await " if is_async else "")
    imports = _IMPORTS.format(support=str(Path(__file__).parent), backend=backend_port(pg_server))
    done = run_with_database(app, env, code, is_async, textwrap.dedent(imports))
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-4000:])
    return json.loads(done.stdout.splitlines()[-1])


def lost_commit(app: Path, env: dict[str, str], driver: str, pg_server: Any) -> dict[str, Any]:
    """A create whose statement reaches the server and whose answer is lost (the connection cut): what it
    returned, the user's titles afterwards, and how many connections the fault cut."""
    # two connections: the retry needs a fresh one while the cut one is being dropped
    return _run(app, env, driver, pg_server, _LOST_COMMIT, pool=2)


def measure(app: Path, env: dict[str, str], driver: str, pg_server: Any) -> dict[str, tuple[int, int, list[str]]]:
    """{operation: (round trips, statements, each flight's message types)} of a migrated rendered app's feature,
    for one user."""
    return {name: tuple(counted) for name, counted in _run(app, env, driver, pg_server, _MEASURE).items()}
