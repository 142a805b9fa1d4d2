"""End to end: every valid rendered app, started with its app.yaml command as the Databricks Apps runtime does,
against TLS + scram PostgreSQL and a workspace stub the real databricks-sdk authenticates against.

Each app does CRUD through its real interface as two users, keeps its rows per user in the rendered schema
(owned by the app's role), survives a credential expiry with its connections killed, and never writes a token.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.harness.ports import free_port
from tests.support import apprunner, deployer
from tests.support.app_data import ids_by_title, rows_in_db, table_owner
from tests.support.contracts import (
    MAX_CREDENTIAL_CALLS,
    assert_no_token_leak,
    dash_contract,
    documented_contract,
    gradio_contract,
    http_contract,
    streamlit_contract,
)
from tests.support.http_api import ALICE, BOB, HttpApi
from tests.support.template import combo_id, render, valid_combinations
from tests.support.ui_drivers import DashUi, GradioUi, StreamlitUi
from tests.support.waiting import HANG_GUARD

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("combo", valid_combinations(), ids=combo_id)
def test_rendered_app_end_to_end(combo, tmp_path, pg_server, workspace_stub, deployment):
    client, dbname = deployment
    framework = combo["framework"]
    started = time.monotonic()
    project = render(tmp_path / "out", **combo)
    port = free_port()
    env = apprunner.runtime_env(project, workspace_stub, client, port, tmp_path / "home", dbname)
    log = tmp_path / "app.log"
    ready = "/_stcore/health" if framework == "streamlit" else "/"
    logs = [log]
    driver = None
    with apprunner.running_app(project, env, log, ready_path=ready) as app:
        try:
            if framework in ("flask", "fastapi"):
                ui: Any = HttpApi(app.url)
            elif framework == "dash":
                ui = DashUi(app.url)
            elif framework == "gradio":
                driver = apprunner.driver("gradio", tmp_path, env, project / "app", app.url)
                ui = GradioUi(driver, lambda user: ids_by_title(pg_server, dbname, user))
            else:
                driver = apprunner.driver("streamlit", tmp_path, env, project / "app", str(project / "app" / "main.py"))
                ui = StreamlitUi(driver)
            if driver:
                logs.append(driver.log)
            if framework != "streamlit":
                assert requests.get(f"{app.url}/healthz", timeout=HANG_GUARD).status_code == 200, app.log_text()[-4000:]

            users = [ALICE, BOB] if framework != "streamlit" else [ALICE]
            first = users[0]
            a1 = ui.create(first, "alice one")
            a2 = ui.create(first, "alice two")
            ui.create_refused(first, "")
            assert ui.update(first, a1, "alice one", True)
            assert ui.delete(first, a2)
            assert ui.list(first) == [(a1, "alice one", True)]
            expected = [(first, "alice one", True)]
            if framework != "streamlit":
                b1 = ui.create(BOB, "bob one")
                assert [t for _, t, _ in ui.list(BOB)] == ["bob one"]
                # bob cannot see, change or delete alice's item
                assert not ui.update(BOB, a1, "hijacked", False)
                assert not ui.delete(BOB, a1)
                assert ui.list(first) == [(a1, "alice one", True)]
                assert b1 != a1
                expected.append((BOB, "bob one", False))
            assert rows_in_db(pg_server, dbname) == expected
            owner = deployer.of(env)  # the deployer's owner role owns the table; the app's role owns nothing
            assert owner is not None and table_owner(pg_server, dbname) == owner.owner != client.role
            if framework in ("flask", "fastapi"):
                http_contract(app.url, a1)
                if framework == "fastapi":
                    documented_contract(app.url)
            elif framework == "dash":
                dash_contract(ui, a1)
            elif framework == "gradio":
                gradio_contract(ui, a1)
            else:
                streamlit_contract(driver)
            assert rows_in_db(pg_server, dbname) == expected  # nothing refused changed a row

            # rotation: the token stops working for new logins and every open connection is killed
            workspace_stub.expire_now(client.client_id)
            killed = pg_server.terminate_backends(usename=client.role, every_database=True)
            assert killed >= 1
            # the very next request must succeed, without a restart: no connection is checked before use
            # (app/database/pooled.py), the first statement on a dead one fails and the work runs again on a
            # fresh login, for which the refused token is replaced
            for _ in range(5):  # several requests, so every gunicorn worker had to log in again
                assert ui.list(first) == [(a1, "alice one", True)]
            after = ui.create(first, "after rotation")
            assert (after, "after rotation", False) in ui.list(first)
            assert app.proc.poll() is None
        except BaseException:
            print(f"--- app log ({combo_id(combo)})\n{app.log_text()[-8000:]}")
            if driver:
                print(f"--- driver log\n{driver.log.read_text(errors='replace')[-8000:]}")
            raise
        finally:
            if driver:
                driver.close()
    calls = workspace_stub.credential_calls()
    oauth = workspace_stub.access_token_calls(client.client_id)
    print(
        f"E2E {combo_id(combo)}: ready {app.ready_after:.1f}s total {time.monotonic() - started:.1f}s "
        f"credential_calls={calls} oauth_token_calls={oauth} minted={len(workspace_stub.issued_tokens)}"
    )
    if combo["lakebase"] == "autoscaling":
        assert 1 <= calls <= MAX_CREDENTIAL_CALLS, calls
        assert workspace_stub.credential_calls("postgres") == calls
    else:
        # Provisioned logs in with the app's workspace OAuth token: no credential API call, no instance name;
        # one OAuth flow per process at start and one after the rotation
        assert calls == 0, calls
        assert 2 <= oauth <= MAX_CREDENTIAL_CALLS, oauth
    assert_no_token_leak(workspace_stub, project, logs)
