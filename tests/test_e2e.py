"""End to end: every valid rendered app, started with its app.yaml command as the Databricks Apps runtime does,
against TLS + scram PostgreSQL and a workspace stub the real databricks-sdk authenticates against.

Each app does CRUD through its real interface as two users, keeps its rows per user in the rendered schema
(owned by the app's role), survives a credential expiry with its connections killed, and never writes a token.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import apprunner
from tests.template import combo_id, render, valid_combinations

pytestmark = pytest.mark.e2e

ALICE = "alice@example.com"
BOB = "bob@example.com"
LOCAL_USER = "local.user@example.com"
SCHEMA = "app_data"
MAX_CREDENTIAL_CALLS = 6


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def deployment(request, pg_server, workspace_stub):
    """A fresh service principal (role) of the combination's Lakebase flavour and a database of its own."""
    callspec = getattr(request.node, "callspec", None)
    answers = callspec.params.get("combo") or callspec.params.get("answers") or {} if callspec else {}
    client = workspace_stub.new_client(lakebase=answers.get("lakebase", "autoscaling"))
    dbname = pg_server.create_database_for(client.role)
    yield client, dbname
    pg_server.drop_database(dbname)


def rows_in_db(pg_server: Any, dbname: str) -> list[tuple[str, str, bool]]:
    with pg_server.connect_superuser(dbname) as conn:
        return [tuple(r) for r in conn.execute(f"SELECT owner, title, done FROM {SCHEMA}.items ORDER BY id")]


def table_owner(pg_server: Any, dbname: str) -> str | None:
    with pg_server.connect_superuser(dbname) as conn:
        row = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'items'", [SCHEMA]
        ).fetchone()
    return row[0] if row else None


# ---------------------------------------------------------------------------------------------- UIs
class HttpApi:
    """flask / fastapi: the JSON API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _h(self, user: str) -> dict[str, str]:
        return {"X-Forwarded-Email": user}

    def create(self, user: str, title: str) -> int:
        r = requests.post(f"{self.url}/api/items", json={"title": title}, headers=self._h(user), timeout=30)
        assert r.status_code == 201, (r.status_code, r.text)
        return int(r.json()["id"])

    def create_refused(self, user: str, title: str) -> None:
        r = requests.post(f"{self.url}/api/items", json={"title": title}, headers=self._h(user), timeout=30)
        assert r.status_code == 400, (r.status_code, r.text)

    def list(self, user: str) -> list[tuple[int, str, bool]]:
        r = requests.get(f"{self.url}/api/items", headers=self._h(user), timeout=30)
        assert r.status_code == 200, (r.status_code, r.text)
        return [(int(i["id"]), i["title"], bool(i["done"])) for i in r.json()]

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        r = requests.put(
            f"{self.url}/api/items/{item_id}", json={"title": title, "done": done}, headers=self._h(user), timeout=30
        )
        assert r.status_code in (200, 404), (r.status_code, r.text)
        return r.status_code == 200

    def delete(self, user: str, item_id: int) -> bool:
        r = requests.delete(f"{self.url}/api/items/{item_id}", headers=self._h(user), timeout=30)
        assert r.status_code in (204, 404), (r.status_code, r.text)
        return r.status_code == 204


class DashUi:
    """dash: the `change_items` callback through /_dash-update-component."""

    def __init__(self, url: str) -> None:
        self.url = url
        deps = requests.get(f"{url}/_dash-dependencies", timeout=30).json()
        self.output = next(d["output"] for d in deps if "items-data.data" in d["output"])
        self.clicks = 0

    def _call(self, user: str, trigger: str | None, **state: Any) -> tuple[list[dict], str]:
        self.clicks += 1
        inputs = [
            {"id": b, "property": "n_clicks", "value": self.clicks if b == trigger else 0}
            for b in ("add", "save", "delete")
        ]
        body = {
            "output": self.output,
            "outputs": [{"id": "items-data", "property": "data"}, {"id": "message", "property": "children"}],
            "inputs": inputs,
            "state": [
                {"id": "new-title", "property": "value", "value": state.get("new_title")},
                {"id": "edit-id", "property": "value", "value": state.get("edit_id")},
                {"id": "edit-title", "property": "value", "value": state.get("edit_title")},
                {"id": "edit-done", "property": "value", "value": ["done"] if state.get("done") else []},
            ],
            "changedPropIds": [f"{trigger}.n_clicks"] if trigger else [],
        }
        r = requests.post(
            f"{self.url}/_dash-update-component", json=body, headers={"X-Forwarded-Email": user}, timeout=30
        )
        assert r.status_code == 200, (r.status_code, r.text[:2000])
        response = r.json()["response"]
        return response["items-data"]["data"], response["message"]["children"]

    def create(self, user: str, title: str) -> int:
        _, message = self._call(user, "add", new_title=title)
        match = re.fullmatch(r"Added item (\d+)\.", message)
        assert match, message
        return int(match.group(1))

    def create_refused(self, user: str, title: str) -> None:
        _, message = self._call(user, "add", new_title=title)
        assert "title" in message, message

    def list(self, user: str) -> list[tuple[int, str, bool]]:
        rows, _ = self._call(user, None)
        return [(int(r["id"]), r["title"], bool(r["done"])) for r in rows]

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        _, message = self._call(user, "save", edit_id=item_id, edit_title=title, done=done)
        return not message

    def delete(self, user: str, item_id: int) -> bool:
        _, message = self._call(user, "delete", edit_id=item_id)
        return not message


class GradioUi:
    """gradio: gradio_client (in the app env) calling the named endpoints, a header per user."""

    def __init__(self, driver: apprunner.Driver) -> None:
        self.driver = driver

    def _predict(self, user: str, api_name: str, *args: Any) -> list[tuple[int, str, bool]]:
        value = self.driver.call("predict", user=user, api_name=api_name, args=list(args))
        data = value["data"] if isinstance(value, dict) else value
        return [(int(r[0]), r[1], r[2] in (True, "true", "True")) for r in data or []]

    def create(self, user: str, title: str) -> int:
        rows = self._predict(user, "/create_item", title)
        return max(i for i, t, _ in rows if t == title)

    def create_refused(self, user: str, title: str) -> None:
        with pytest.raises(apprunner.DriverError):
            self._predict(user, "/create_item", title)

    def list(self, user: str) -> list[tuple[int, str, bool]]:
        return self._predict(user, "/list_items")

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        try:
            self._predict(user, "/update_item", item_id, title, done)
        except apprunner.DriverError:
            return False
        return True

    def delete(self, user: str, item_id: int) -> bool:
        try:
            self._predict(user, "/delete_item", item_id)
        except apprunner.DriverError:
            return False
        return True


class StreamlitUi:
    """streamlit: AppTest on main.py in a subprocess with the app's env; no headers, so LOCAL_USER owns rows."""

    def __init__(self, driver: apprunner.Driver) -> None:
        self.driver = driver

    def _state(self, op: str, **args: Any) -> dict[str, Any]:
        state = self.driver.call(op, **args)
        assert not state["exceptions"], state["exceptions"]
        return state

    def _items(self, state: dict[str, Any]) -> list[tuple[int, str, bool]]:
        ids = [int(k.split("-", 1)[1]) for k in state["checkboxes"]]
        return [(i, t, state["checkboxes"][f"done-{i}"]) for i, t in zip(ids, state["titles"], strict=True)]

    def create(self, user: str, title: str) -> int:
        state = self._state("add", title=title)
        assert not state["acting_session"]["errors"], state["acting_session"]["errors"]
        return max(i for i, t, _ in self._items(state) if t == title)

    def create_refused(self, user: str, title: str) -> None:
        state = self.driver.call("add", title=title)
        # the refusal is shown in the session that submitted; the new session lists what is stored
        assert not state["exceptions"], state["exceptions"]
        assert any("title" in e for e in state["acting_session"]["errors"]), state["acting_session"]
        assert title not in state["titles"]

    def list(self, user: str) -> list[tuple[int, str, bool]]:
        return self._items(self._state("list"))

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        self._state("toggle", id=item_id)
        return True

    def delete(self, user: str, item_id: int) -> bool:
        self._state("delete", id=item_id)
        return True


def eventually(probe: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return probe()
        except (AssertionError, requests.RequestException, apprunner.DriverError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def assert_no_token_leak(workspace_stub: Any, project: Path, logs: list[Path]) -> None:
    tokens = [*workspace_stub.issued_tokens, *workspace_stub.issued_access_tokens]
    assert workspace_stub.issued_tokens or workspace_stub.issued_access_tokens, "no credential was issued"
    files = [p for p in project.rglob("*") if p.is_file()] + [p for p in logs if p.exists()]
    for path in files:
        data = path.read_bytes()
        for token in tokens:
            assert token.encode() not in data, f"a database token was written to {path}"


# ---------------------------------------------------------------------------------------------- the matrix
@pytest.mark.parametrize("combo", valid_combinations(), ids=combo_id)
def test_rendered_app_end_to_end(combo, tmp_path, pg_server, workspace_stub, deployment):
    client, dbname = deployment
    framework = combo["framework"]
    started = time.monotonic()
    project = render(tmp_path / "out", **combo)
    port = apprunner.free_port()
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
                ui = GradioUi(driver)
            else:
                driver = apprunner.driver("streamlit", tmp_path, env, project / "app", str(project / "app" / "main.py"))
                ui = StreamlitUi(driver)
            if driver:
                logs.append(driver.log)
            if framework != "streamlit":
                assert requests.get(f"{app.url}/healthz", timeout=30).status_code == 200, app.log_text()[-4000:]

            users = [ALICE, BOB] if framework != "streamlit" else [LOCAL_USER]
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
            assert table_owner(pg_server, dbname) == client.role

            # rotation: the token stops working for new logins and every open connection is killed
            workspace_stub.expire_now(client.client_id)
            killed = pg_server.terminate_backends(usename=client.role, every_database=True)
            assert killed >= 1
            # the very next request must succeed: dead connections are pre-pinged away and the
            # refused token is replaced at login, without a restart
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


# ---------------------------------------------------------------------------------------------- two apps, restarts
PAIRS = [
    {"framework": "fastapi", "driver": "asyncpg"},
    {"framework": "flask", "driver": "psycopg3"},
]


@pytest.mark.parametrize("answers", PAIRS, ids=lambda a: f"{a['framework']}-{a['driver']}")
def test_two_instances_start_together(answers, tmp_path, pg_server, workspace_stub, deployment):
    """Same role, same schema, started at the same moment: the bootstrap race is serialised, both serve."""
    client, dbname = deployment
    project = render(tmp_path / "out", **answers)
    apps = []
    try:
        for n in range(2):
            env = apprunner.runtime_env(
                project, workspace_stub, client, apprunner.free_port(), tmp_path / "home", dbname
            )
            apps.append(apprunner.start(project, env, tmp_path / f"app{n}.log"))
        for app in apps:
            apprunner.wait_ready(app)
        status: dict[int, int] = {}

        def health(i: int) -> None:  # the first /healthz opens the pool and bootstraps the schema
            status[i] = requests.get(f"{apps[i].url}/healthz", timeout=60).status_code

        threads = [threading.Thread(target=health, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert status == {0: 200, 1: 200}, (status, [a.log_text()[-4000:] for a in apps])
        for i, app in enumerate(apps):
            HttpApi(app.url).create(ALICE, f"from instance {i}")
            assert requests.get(f"{app.url}/healthz", timeout=30).status_code == 200
        assert sorted(t for _, t, _ in rows_in_db(pg_server, dbname)) == ["from instance 0", "from instance 1"]
        assert table_owner(pg_server, dbname) == client.role
        assert workspace_stub.credential_calls() <= MAX_CREDENTIAL_CALLS
    finally:
        for app in apps:
            apprunner.stop(app)


@pytest.mark.parametrize("answers", PAIRS, ids=lambda a: f"{a['framework']}-{a['driver']}")
def test_recovers_when_postgres_comes_back(answers, tmp_path, pg_server, workspace_stub, deployment):
    client, dbname = deployment
    project = render(tmp_path / "out", **answers)
    env = apprunner.runtime_env(project, workspace_stub, client, apprunner.free_port(), tmp_path / "home", dbname)
    with apprunner.running_app(project, env, tmp_path / "app.log") as app:
        api = HttpApi(app.url)
        assert requests.get(f"{app.url}/healthz", timeout=30).status_code == 200
        api.create(ALICE, "before the outage")
        pg_server.stop_server()
        try:
            codes = []
            for _ in range(3):
                t0 = time.monotonic()
                codes.append(requests.get(f"{app.url}/healthz", timeout=30).status_code)
                print(f"E2E outage /healthz -> {codes[-1]} in {time.monotonic() - t0:.1f}s")
            assert codes == [503, 503, 503], (codes, app.log_text()[-4000:])
        finally:
            pg_server.start_server()
        back = time.monotonic()
        deadline = back + 20
        # Every process must recover by itself (gunicorn runs 2 workers, each pool retries with its own
        # backoff, which grows while the server is away): wait for 5 healthy answers in a row.
        in_a_row = 0
        while in_a_row < 5:
            in_a_row = in_a_row + 1 if requests.get(f"{app.url}/healthz", timeout=30).status_code == 200 else 0
            assert time.monotonic() < deadline, app.log_text()[-4000:]
            if in_a_row == 0:
                time.sleep(0.5)
        print(f"E2E healthy again {time.monotonic() - back:.1f}s after PostgreSQL restarted")
        assert [t for _, t, _ in api.list(ALICE)] == ["before the outage"]
        assert app.proc.poll() is None
