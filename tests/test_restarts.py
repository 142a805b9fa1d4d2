"""Rendered apps through restarts, end to end (as tests/test_e2e.py runs them): two instances of one app started at
the same moment both serve; an app whose PostgreSQL goes away answers 503 and serves again by itself when it
comes back, without a restart of its own."""

from __future__ import annotations

import time

import pytest
import requests

from tests.harness.ports import free_port
from tests.support import apprunner, deployer
from tests.support.app_data import rows_in_db, table_owner
from tests.support.contracts import MAX_CREDENTIAL_CALLS
from tests.support.http_api import ALICE, HttpApi
from tests.support.template import render
from tests.support.waiting import HANG_GUARD

pytestmark = pytest.mark.e2e

PAIRS = [
    {"framework": "fastapi", "driver": "asyncpg"},
    {"framework": "flask", "driver": "psycopg3"},
]


@pytest.mark.parametrize("answers", PAIRS, ids=lambda a: f"{a['framework']}-{a['driver']}")
def test_two_instances_start_together(answers, tmp_path, pg_server, workspace_stub, deployment):
    """Same role, same schema, started at the same moment after the deployer's migration: both serve."""
    client, dbname = deployment
    project = render(tmp_path / "out", **answers)
    apps = []
    try:
        for n in range(2):
            env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
            apps.append(apprunner.start(project, env, tmp_path / f"app{n}.log"))
        for app in apps:
            apprunner.wait_ready(app)
        status = apprunner.healthz_at_once(apps)  # each opens its pool and finds the schema at its revision
        assert status == {0: 200, 1: 200}, (status, [a.log_text()[-4000:] for a in apps])
        for i, app in enumerate(apps):
            HttpApi(app.url).create(ALICE, f"from instance {i}")
            assert requests.get(f"{app.url}/healthz", timeout=HANG_GUARD).status_code == 200
        assert sorted(t for _, t, _ in rows_in_db(pg_server, dbname)) == ["from instance 0", "from instance 1"]
        owner = deployer.of(env)
        assert owner is not None and table_owner(pg_server, dbname) == owner.owner != client.role
        assert workspace_stub.credential_calls() <= MAX_CREDENTIAL_CALLS
    finally:
        for app in apps:
            apprunner.stop(app)


@pytest.mark.parametrize("answers", PAIRS, ids=lambda a: f"{a['framework']}-{a['driver']}")
def test_recovers_when_postgres_comes_back(answers, tmp_path, pg_server, workspace_stub, deployment):
    client, dbname = deployment
    project = render(tmp_path / "out", **answers)
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    with apprunner.running_app(project, env, tmp_path / "app.log") as app:
        api = HttpApi(app.url)
        assert requests.get(f"{app.url}/healthz", timeout=HANG_GUARD).status_code == 200
        api.create(ALICE, "before the outage")
        pg_server.stop_server()
        try:
            codes = []
            for _ in range(3):
                t0 = time.monotonic()
                codes.append(requests.get(f"{app.url}/healthz", timeout=HANG_GUARD).status_code)
                print(f"E2E outage /healthz -> {codes[-1]} in {time.monotonic() - t0:.1f}s")
            assert codes == [503, 503, 503], (codes, app.log_text()[-4000:])
        finally:
            pg_server.start_server()
        back = time.monotonic()
        # Every process must recover by itself (gunicorn runs 2 workers, each pool retries with its own
        # backoff, which grows while the server is away): wait for 5 healthy answers in a row while the app
        # runs (how soon is printed, not judged: a busy machine makes it slower, not wrong).
        in_a_row = 0
        while in_a_row < 5:
            in_a_row = in_a_row + 1 if requests.get(f"{app.url}/healthz", timeout=HANG_GUARD).status_code == 200 else 0
            assert app.proc.poll() is None and time.monotonic() - back < HANG_GUARD, app.log_text()[-4000:]
            if in_a_row == 0:
                time.sleep(0.5)
        print(f"E2E healthy again {time.monotonic() - back:.1f}s after PostgreSQL restarted")
        assert [t for _, t, _ in api.list(ALICE)] == ["before the outage"]
        assert app.proc.poll() is None
