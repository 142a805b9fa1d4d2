"""The JSON API's limits in every Flask and FastAPI combination, end to end (as tests/test_e2e.py runs them): a body
over the cap, paging, the per-user item cap, and a full pool or a query stuck behind a lock, each answered as the
API contract says (413, pages with Link, 409, 503 with Retry-After), never 500."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.harness.ports import free_port
from tests.support import apprunner
from tests.support.app_data import SCHEMA
from tests.support.http_api import ALICE
from tests.support.template import render, valid_combinations
from tests.support.waiting import HANG_GUARD

pytestmark = pytest.mark.e2e


API_PAIRS = sorted(
    {(c["framework"], c["driver"]) for c in valid_combinations() if c["framework"] in ("flask", "fastapi")}
)


def until_waiting_on_a_lock(pg_server: Any, role: str, request: Future) -> None:
    """Until the app's backend waits on the lock the test holds (what PostgreSQL reports); fails if the request
    was answered first."""
    while True:
        with pg_server.connect_superuser() as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'", [role]
            ).fetchone()[0]
        if waiting:
            return
        assert not request.done(), f"answered before it waited on the lock: {request.result().status_code}"
        time.sleep(0.1)


def assert_busy(r: requests.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    assert set(r.json()) == {"error", "field"} and r.json()["field"] is None, r.text
    assert int(r.headers["Retry-After"]) >= 1, r.headers


def oversized_post(url: str, chunked: bool) -> tuple[int, dict[str, Any]]:
    """POST 60 MB of JSON to /api/items, streamed: send the headers and 64 KiB, then stop and read the answer.

    An app that refuses before reading answers although 60 MB minus 64 KiB were never sent; one that reads the
    body first would wait for the rest (until the hang guard)."""
    host, port = url.removeprefix("http://").split(":")
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {60 * 1024 * 1024}"
    head = (
        f"POST /api/items HTTP/1.1\r\nHost: {host}:{port}\r\nX-Forwarded-Email: {ALICE}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()
    part = b'{"title": "' + b"x" * (64 * 1024)
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):  # the app may answer and close while the body is still coming
            sock.sendall(part if not chunked else b"%x\r\n%s\r\n" % (len(part), part))
        answer = b""
        while not answer.rstrip().endswith((b"}", b"}\r\n0")) and (chunk := sock.recv(65536)):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body[body.index(b"{") : body.rindex(b"}") + 1])


def paging_contract(api: str) -> None:
    """Pages of `limit` items, oldest first; a Link header names the next page, none after the last."""
    alice = {"X-Forwarded-Email": ALICE}
    made = [requests.post(api, json={"title": t}, headers=alice, timeout=HANG_GUARD).json()["id"] for t in "abc"]
    everything = [item["id"] for item in requests.get(api, headers=alice, timeout=HANG_GUARD).json()]
    pages, url = [], f"{api}?limit=2"
    while url:
        r = requests.get(url, headers=alice, timeout=HANG_GUARD)
        assert r.status_code == 200, r.text
        pages.append([item["id"] for item in r.json()])
        url = r.links.get("next", {}).get("url")
        url = url and requests.compat.urljoin(api, url)
    assert [len(page) for page in pages] == [2, 2] and sum(pages, []) == everything, pages
    assert everything[-3:] == made
    for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("after=-1", "after")):
        r = requests.get(f"{api}?{query}", headers=alice, timeout=HANG_GUARD)
        assert r.status_code == 400 and r.json() == {"error": r.json()["error"], "field": field}, r.text
    for item_id in made:
        assert requests.delete(f"{api}/{item_id}", headers=alice, timeout=HANG_GUARD).status_code == 204


def item_cap_contract(api: str, pg_server: Any, dbname: str) -> None:
    """A user at the cap (1000 items, README: Limits) is refused 409 and no row is added."""
    alice = {"X-Forwarded-Email": ALICE}
    with pg_server.connect_superuser(dbname) as conn:  # fill up to one below the cap, fast
        kept = conn.execute(f"SELECT count(*) FROM {SCHEMA}.items WHERE owner = %s", [ALICE]).fetchone()[0]
        conn.execute(
            f"INSERT INTO {SCHEMA}.items (owner, title) SELECT %s, 'filler ' || n FROM generate_series(1, %s) n",
            [ALICE, 999 - kept],
        )
    try:
        assert requests.post(api, json={"title": "the 1000th"}, headers=alice, timeout=HANG_GUARD).status_code == 201
        refused = requests.post(api, json={"title": "one too many"}, headers=alice, timeout=HANG_GUARD)
        assert refused.status_code == 409 and set(refused.json()) == {"error", "field"}, refused.text
        with pg_server.connect_superuser(dbname) as conn:
            assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.items WHERE owner = %s", [ALICE]).fetchone()[0] == 1000
    finally:
        with pg_server.connect_superuser(dbname) as conn:
            conn.execute(f"DELETE FROM {SCHEMA}.items WHERE owner = %s AND title <> 'one'", [ALICE])


# Which limit ends a query stuck behind a lock: statement_timeout counts the wait too, lock_timeout only the wait.
STOPPERS = {
    "statement_timeout": {"DB_STATEMENT_TIMEOUT_MS": "3000", "DB_LOCK_TIMEOUT_MS": "60000"},
    "lock_timeout": {"DB_STATEMENT_TIMEOUT_MS": "60000", "DB_LOCK_TIMEOUT_MS": "3000"},
}


@pytest.mark.parametrize(
    "answers", [{"framework": f, "driver": d} for f, d in API_PAIRS], ids=lambda a: "-".join(a.values())
)
def test_api_limits(answers, tmp_path, pg_server, workspace_stub, deployment):
    """The limits of the API contract: a body over the cap is refused (413) before it is read, the list comes in
    pages, a user at the item cap is refused (409), and a full pool or a query stuck behind a lock past
    statement_timeout or lock_timeout is answered 503 with Retry-After, never 500; then the app serves again."""
    client, dbname = deployment
    project = render(tmp_path / "out", **answers)
    alice = {"X-Forwarded-Email": ALICE}
    for run, (stopper, timeouts) in enumerate(STOPPERS.items()):
        env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
        # one process with one connection and a 1 s wait for it: the limits come well after that wait
        env.update(DB_POOL_MAX_SIZE="1", DB_POOL_MIN_SIZE="1", DB_CONNECT_TIMEOUT="1", WEB_CONCURRENCY="1", **timeouts)
        with apprunner.running_app(project, env, tmp_path / f"{stopper}.log") as app:
            api = f"{app.url}/api/items"
            try:
                if run == 0:
                    created = requests.post(api, json={"title": "one"}, headers=alice, timeout=HANG_GUARD)
                    assert created.status_code == 201, created.text
                    for chunked in (False, True):  # refused on its Content-Length, or as it arrives
                        status, body = oversized_post(app.url, chunked)
                        assert status == 413 and body["field"] == "body" and set(body) == {"error", "field"}, body
                    big = {"title": "x" * 20_000}  # over the cap, small enough to send whole: the same answer
                    r = requests.post(api, json=big, headers=alice, timeout=HANG_GUARD)
                    assert r.status_code == 413 and r.json()["field"] == "body", r.text
                    paging_contract(api)
                    item_cap_contract(api, pg_server, dbname)
                with pg_server.connect_superuser(dbname) as holder, holder.transaction():
                    holder.execute(f"LOCK TABLE {SCHEMA}.items IN ACCESS EXCLUSIVE MODE")
                    with ThreadPoolExecutor(1) as pool:
                        stuck = pool.submit(
                            requests.get, api, headers=alice, timeout=HANG_GUARD
                        )  # takes the one connection
                        until_waiting_on_a_lock(pg_server, client.role, stuck)
                        assert_busy(requests.get(api, headers=alice, timeout=HANG_GUARD))  # the pool is exhausted
                        ended = stuck.result()
                        assert_busy(ended)  # the limit ended the stuck query
                        line = ended.json()["error"]
                        if stopper == "lock_timeout":  # the one line names the lock, and what to do
                            assert "lock_timeout" in line and "try again shortly" in line, line
                        else:
                            assert "lock" not in line and "try again shortly" in line, line
                items = requests.get(api, headers=alice, timeout=HANG_GUARD)
                assert items.status_code == 200 and [i["title"] for i in items.json()] == ["one"], items.text
            except BaseException:
                print(f"--- app log ({stopper})\n{app.log_text()[-6000:]}")
                raise
