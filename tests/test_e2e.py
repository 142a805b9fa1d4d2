"""End to end: every valid rendered app, started with its app.yaml command as the Databricks Apps runtime does,
against TLS + scram PostgreSQL and a workspace stub the real databricks-sdk authenticates against.

Each app does CRUD through its real interface as two users, keeps its rows per user in the rendered schema
(owned by the app's role), survives a credential expiry with its connections killed, and never writes a token.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import apprunner, deployer
from tests.support.http_api import ALICE, BOB, HttpApi
from tests.support.ports import free_port
from tests.support.template import combo_id, render, valid_combinations
from tests.support.waiting import HANG_GUARD

pytestmark = pytest.mark.e2e

SCHEMA = "app_data"
MAX_CREDENTIAL_CALLS = 6


def rows_in_db(pg_server: Any, dbname: str) -> list[tuple[str, str, bool]]:
    with pg_server.connect_superuser(dbname) as conn:
        return [tuple(r) for r in conn.execute(f"SELECT owner, title, done FROM {SCHEMA}.items ORDER BY id")]


def ids_by_title(pg_server: Any, dbname: str, owner: str) -> dict[str, int]:
    with pg_server.connect_superuser(dbname) as conn:
        rows = conn.execute(f"SELECT title, id FROM {SCHEMA}.items WHERE owner = %s", [owner.lower()])
        return {title: item_id for title, item_id in rows}


def table_owner(pg_server: Any, dbname: str) -> str | None:
    with pg_server.connect_superuser(dbname) as conn:
        row = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'items'", [SCHEMA]
        ).fetchone()
    return row[0] if row else None


# ---------------------------------------------------------------------------------------------- UIs
class DashUi:
    """dash: its two callbacks through /_dash-update-component (change: add / toggle / delete a row; show: the list)."""

    def __init__(self, url: str) -> None:
        self.url = url
        deps = requests.get(f"{url}/_dash-dependencies", timeout=HANG_GUARD).json()
        self.change_output = next(
            d["output"] for d in deps if "changes.data" in d["output"] and "message" in d["output"]
        )
        self.show_output = next(d["output"] for d in deps if d["output"].startswith("items.children"))
        self.clicks = 0

    def post(self, user: str | None, body: dict[str, Any]) -> requests.Response:
        headers = {"X-Forwarded-Email": user} if user else {}
        return requests.post(f"{self.url}/_dash-update-component", json=body, headers=headers, timeout=HANG_GUARD)

    def change_body(self, trigger: str, item: Any = None, value: Any = None, title: Any = None) -> dict[str, Any]:
        """The body the browser posts when the add button, a row's checkbox or its Delete button is used."""
        self.clicks += 1
        rows = [] if item is None else [item]
        pattern = {"item": item, "type": trigger}
        return {
            "output": self.change_output,
            "outputs": [
                {"id": "changes", "property": "data"},
                {"id": "message", "property": "children"},
                {"id": "new-title", "property": "value"},
            ],
            "inputs": [
                {"id": "add", "property": "n_clicks", "value": self.clicks if trigger == "add" else 0},
                [
                    {"id": {"item": i, "type": "done"}, "property": "value", "value": value}
                    for i in rows
                    if trigger == "done"
                ],
                [
                    {"id": {"item": i, "type": "delete"}, "property": "n_clicks", "value": 1}
                    for i in rows
                    if trigger == "delete"
                ],
            ],
            "state": [
                {"id": "new-title", "property": "value", "value": title},
                {"id": "changes", "property": "data", "value": 0},
            ],
            "changedPropIds": [
                "add.n_clicks"
                if trigger == "add"
                else json.dumps(pattern, sort_keys=True, separators=(",", ":"))
                + (".value" if trigger == "done" else ".n_clicks")
            ],
        }

    def change(self, user: str | None, trigger: str, item: Any = None, value: Any = None, title: Any = None) -> str:
        """Fire the change callback as the browser does; returns the message shown ('' when none)."""
        r = self.post(user, self.change_body(trigger, item, value, title))
        assert r.status_code in (200, 204), (r.status_code, r.text[:2000])
        response = r.json()["response"] if r.status_code == 200 else {}
        if trigger == "add" and "changes" in response:
            assert response["new-title"]["value"] == "", response  # the input is cleared after Add
        return response.get("message", {}).get("children") or ""

    def list(self, user: str | None) -> list[tuple[int, str, bool]]:
        body = {
            "output": self.show_output,
            "outputs": {"id": "items", "property": "children"},
            "inputs": [{"id": "changes", "property": "data", "value": 0}],
            "changedPropIds": [],
        }
        r = self.post(user, body)
        assert r.status_code == 200, (r.status_code, r.text[:2000])
        rows = []
        for li in r.json()["response"]["items"]["children"]:
            if li["props"].get("className") == "empty":  # "Nothing here yet": no rows
                continue
            children = li["props"]["children"]
            if isinstance(children, str):
                raise AssertionError(children)  # a message instead of a list
            box = children[0]["props"]
            rows.append((int(box["id"]["item"]), box["options"][0]["label"], box["value"] == ["done"]))
        return rows

    def create(self, user: str, title: str) -> int:
        assert self.change(user, "add", title=title) == ""
        return max(i for i, t, _ in self.list(user) if t == title)

    def create_refused(self, user: str, title: str) -> None:
        message = self.change(user, "add", title=title)
        assert "title" in message, message

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        return not self.change(user, "done", item=item_id, value=["done"] if done else [])

    def delete(self, user: str, item_id: int) -> bool:
        return not self.change(user, "delete", item=item_id)


class GradioUi:
    """gradio: gradio_client (in the app env) calling the named endpoints, a header per user. The page shows no
    ids, so the test reads them from the database (``ids``: title -> id of a user's rows)."""

    def __init__(self, driver: apprunner.Driver, ids: Callable[[str], dict[str, int]]) -> None:
        self.driver = driver
        self.ids = ids

    def predict(self, user: str | None, api_name: str, *args: Any) -> Any:
        return self.driver.call("predict", user=user, api_name=api_name, args=list(args))

    def _rows(self, user: str, result: Any) -> list[tuple[int, str, bool]]:
        table = result[0]
        data = table["data"] if isinstance(table, dict) else table
        ids = self.ids(user)
        assert all(len(r) == 3 for r in data or []), data  # title, done, updated: no id column
        return [(ids[r[0]], r[0], r[1] in (True, "true", "True")) for r in data or []]

    def create(self, user: str, title: str) -> int:
        result = self.predict(user, "/create_item", title)
        assert result[-1] == "", result  # the input is cleared after Add
        return self.ids(user)[title]

    def create_refused(self, user: str, title: str) -> None:
        with pytest.raises(apprunner.DriverError):
            self.predict(user, "/create_item", title)

    def list(self, user: str) -> list[tuple[int, str, bool]]:
        return self._rows(user, self.predict(user, "/list_items"))

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        try:
            self.predict(user, "/set_done", item_id, done)
        except apprunner.DriverError:
            return False
        return True

    def delete(self, user: str, item_id: int) -> bool:
        try:
            self.predict(user, "/delete_item", item_id)
        except apprunner.DriverError:
            return False
        return True


class StreamlitUi:
    """streamlit: AppTest on main.py in a subprocess with the app's env; the driver hands st.context the user."""

    def __init__(self, driver: apprunner.Driver) -> None:
        self.driver = driver

    def _state(self, op: str, **args: Any) -> dict[str, Any]:
        state = self.driver.call(op, user=ALICE, **args)
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
        state = self.driver.call("add", user=user, title=title)
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


# ---------------------------------------------------------------------------------------------- the contract
# Hostile inputs every interface must refuse without touching a row (the rendered README's "API contract").
# The harness sets DATABRICKS_APP_NAME as the Apps runtime does, so a request without X-Forwarded-Email is
# refused, never served as a local user.
BAD_TITLES = ["a\x00b", "x" * 201, "", "   ", "line\nbreak"]
BAD_IDS = [2**63, 99999999999999999999, 0, -1, "abc", 1.5]


def http_contract(url: str, alice_item: int) -> None:
    alice, bob = {"X-Forwarded-Email": ALICE}, {"X-Forwarded-Email": BOB}
    api = f"{url}/api/items"

    def refused(r: requests.Response, status: int, field: str | None) -> None:
        assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error", "field"} and isinstance(body["error"], str) and body["error"], body
        assert body["field"] == field, (r.request.method, r.request.url, body)

    refused(requests.get(api, timeout=HANG_GUARD), 401, None)  # no signed-in user on Databricks
    refused(requests.post(api, json={"title": "anonymous"}, timeout=HANG_GUARD), 401, None)
    refused(requests.delete(f"{api}/{alice_item}", timeout=HANG_GUARD), 401, None)
    refused(requests.get(f"{api}/{alice_item}", timeout=HANG_GUARD), 401, None)
    for bad in BAD_IDS:
        refused(requests.get(f"{api}/{bad}", headers=alice, timeout=HANG_GUARD), 400, "id")
        refused(requests.delete(f"{api}/{bad}", headers=alice, timeout=HANG_GUARD), 400, "id")
        refused(
            requests.put(f"{api}/{bad}", json={"title": "t", "done": True}, headers=alice, timeout=HANG_GUARD),
            400,
            "id",
        )
    for title in [*BAD_TITLES, 5, None, ["t"]]:
        refused(requests.post(api, json={"title": title}, headers=alice, timeout=HANG_GUARD), 400, "title")
    as_json = {**alice, "Content-Type": "application/json"}
    refused(
        requests.post(api, data='{"title": "\\ud800"}', headers=as_json, timeout=HANG_GUARD), 400, "title"
    )  # lone surrogate
    for done in ("false", 1, None):
        body = {"title": "t", "done": done}
        refused(requests.put(f"{api}/{alice_item}", json=body, headers=alice, timeout=HANG_GUARD), 400, "done")
    refused(requests.put(f"{api}/{alice_item}", json={"title": "t"}, headers=alice, timeout=HANG_GUARD), 400, "done")
    refused(requests.post(api, json={"title": "t", "owner": BOB}, headers=alice, timeout=HANG_GUARD), 400, "owner")
    for raw in ("{", "", "[]", '"title"', "\xff"):
        refused(requests.post(api, data=raw.encode("latin-1"), headers=as_json, timeout=HANG_GUARD), 400, "body")
    refused(requests.post(api, data="title=t", headers=alice, timeout=HANG_GUARD), 415, "body")  # a form, not JSON
    refused(
        requests.put(f"{api}/{alice_item}", json={"title": "mine", "done": False}, headers=bob, timeout=HANG_GUARD),
        404,
        "id",
    )
    refused(requests.delete(f"{api}/{alice_item}", headers=bob, timeout=HANG_GUARD), 404, "id")
    refused(requests.get(f"{api}/{alice_item}", headers=bob, timeout=HANG_GUARD), 404, "id")  # alice's: as if none
    got = requests.get(f"{api}/{alice_item}", headers=alice, timeout=HANG_GUARD)
    assert got.status_code == 200 and got.json() in requests.get(api, headers=alice, timeout=HANG_GUARD).json(), (
        got.text
    )
    refused(requests.patch(f"{api}/{alice_item}", json={}, headers=alice, timeout=HANG_GUARD), 405, None)
    for item in requests.get(api, headers=alice, timeout=HANG_GUARD).json():
        assert set(item) == {"id", "title", "done", "created_at", "updated_at"}, item
        assert type(item["id"]) is int and type(item["done"]) is bool and type(item["title"]) is str, item
        for stamp in (item["created_at"], item["updated_at"]):
            assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamp  # ISO 8601, UTC


def dash_contract(ui: DashUi, alice_item: int) -> None:
    assert "not signed in" in ui.change(None, "add", title="anonymous")
    with pytest.raises(AssertionError, match="not signed in"):
        ui.list(None)
    for title in [*BAD_TITLES, 5, ["t"]]:
        assert "title" in ui.change(ALICE, "add", title=title), title
    for bad in BAD_IDS:
        assert "id" in ui.change(ALICE, "delete", item=bad), bad
    assert "done" in ui.change(ALICE, "done", item=alice_item, value="false")
    assert "not in your list" in ui.change(BOB, "delete", item=alice_item)
    assert "not in your list" in ui.change(BOB, "done", item=alice_item, value=[])
    r = requests.post(
        f"{ui.url}/_dash-update-component", data="{", headers={"Content-Type": "application/json"}, timeout=HANG_GUARD
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])


def gradio_contract(ui: GradioUi, alice_item: int) -> None:
    def refused(user: str | None, api_name: str, *args: Any, says: str) -> None:
        with pytest.raises(apprunner.DriverError) as refusal:
            ui.predict(user, api_name, *args)
        assert says in str(refusal.value), (api_name, args, str(refusal.value))

    refused(None, "/list_items", says="not signed in")
    refused(None, "/create_item", "anonymous", says="not signed in")
    for title in BAD_TITLES:
        refused(ALICE, "/create_item", title, says="title")
    for bad in BAD_IDS:
        refused(ALICE, "/delete_item", bad, says="id")
    refused(ALICE, "/set_done", alice_item, "false", says="done")
    refused(BOB, "/delete_item", alice_item, says="not in your list")
    refused(BOB, "/set_done", alice_item, False, says="not in your list")


def streamlit_contract(driver: apprunner.Driver) -> None:
    assert any("not signed in" in e for e in driver.call("list", user=None)["errors"])
    for title in ("a\x00b", "line\nbreak", "   "):
        shown = driver.call("add", user=ALICE, title=title)["acting_session"]
        assert any("title" in e for e in shown["errors"]), (title, shown)


def assert_no_token_leak(workspace_stub: Any, project: Path, logs: list[Path]) -> None:
    tokens = [*workspace_stub.issued_tokens, *workspace_stub.issued_access_tokens]
    assert workspace_stub.issued_tokens or workspace_stub.issued_access_tokens, "no credential was issued"
    files = [p for p in project.rglob("*") if p.is_file()] + [p for p in logs if p.exists()]
    for path in files:
        data = path.read_bytes()
        for token in tokens:
            assert token.encode() not in data, f"a database token was written to {path}"


def documented_contract(url: str) -> None:
    """FastAPI's /openapi.json (what /docs shows) documents the contract http_contract holds: typed bodies that take
    no unknown field, the one error body for each refusal, and no 422, which the API never answers."""
    schema = requests.get(f"{url}/openapi.json", timeout=HANG_GUARD).json()
    shapes = schema["components"]["schemas"]
    assert shapes["Problem"]["required"] == ["error", "field"]
    assert set(shapes["Item"]["properties"]) == {"id", "title", "done", "created_at", "updated_at"}
    expected = {
        ("get", "/api/items"): ({"200", "400", "401", "503"}, None),
        ("post", "/api/items"): ({"201", "400", "401", "403", "409", "413", "415", "503"}, ["title"]),
        ("get", "/api/items/{item_id}"): ({"200", "400", "401", "404", "503"}, None),
        ("put", "/api/items/{item_id}"): ({"200", "400", "401", "403", "404", "413", "415", "503"}, ["title", "done"]),
        ("delete", "/api/items/{item_id}"): ({"204", "400", "401", "403", "404", "503"}, None),
    }
    for (method, path), (statuses, fields) in expected.items():
        operation = schema["paths"][path][method]
        assert set(operation["responses"]) == statuses, (method, path, operation["responses"])
        for status in statuses - {"200", "201", "204"}:
            problem = operation["responses"][status]["content"]["application/json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
        if fields:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            body = shapes[ref.rsplit("/", 1)[1]]
            assert body["required"] == fields and body["additionalProperties"] is False, body


# ---------------------------------------------------------------------------------------------- the matrix
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


# ---------------------------------------------------------------------------------------------- limits
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
