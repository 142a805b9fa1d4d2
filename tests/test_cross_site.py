"""Another website's page against every framework: each cross-site shape a browser can send is refused and no row
changes, while the same request from the app's own origin still works. The rendered app runs as the Apps runtime
starts it (tests/apprunner.py), over real HTTP, on real PostgreSQL; the browser's headers are written out by hand.

What the browser sends (Fetch standard): ``Origin`` on every POST/PUT/DELETE and on every cross-origin request,
``Sec-Fetch-Site`` on every request of a current browser; a page's script can set neither. An HTML form or a fetch
without a preflight can only send ``application/x-www-form-urlencoded``, ``multipart/form-data`` or ``text/plain``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from tests.harness.ports import free_port
from tests.support import apprunner
from tests.support.app_data import rows_in_db
from tests.support.http_api import ALICE
from tests.support.template import render
from tests.support.ui_drivers import DashUi
from tests.support.waiting import HANG_GUARD

pytestmark = pytest.mark.e2e

EVIL = "https://evil.example"
APP_HOST = "lakebase-app-1234.aws.databricksapps.com"  # what X-Forwarded-Host says behind the Apps proxy
FRAMEWORKS = {
    "flask": "psycopg3",
    "fastapi": "asyncpg",
    "dash": "psycopg3",
    "gradio": "asyncpg",
    "streamlit": "psycopg3",
}
# What the Apps runtime sets for Streamlit (https://docs.databricks.com/aws/en/dev-tools/databricks-apps/system-env)
STREAMLIT_RUNTIME_ENV = {"STREAMLIT_SERVER_ENABLE_CORS": "false", "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION": "false"}


def user(**headers: str) -> dict[str, str]:
    return {"X-Forwarded-Email": ALICE, **headers}


def own(app: apprunner.App) -> dict[str, str]:
    """What a browser on the app's own page adds to a change."""
    return {"Origin": app.url, "Sec-Fetch-Site": "same-origin"}


# Each shape: (name, extra headers, content type or None, body). Every one of them must be refused.
def shapes(body: dict[str, Any]) -> list[tuple[str, dict[str, str], str | None, bytes]]:
    as_json = json.dumps(body).encode()
    cross = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    return [
        ("HTML form", cross, "application/x-www-form-urlencoded", b"title=evil"),
        ("HTML form, old browser", {}, "application/x-www-form-urlencoded", b"title=evil"),
        ("text/plain form", cross, "text/plain", as_json),
        ("text/plain, no origin", {}, "text/plain", as_json),
        ("no Content-Type", {}, None, as_json),
        ("multipart form", cross, "multipart/form-data; boundary=x", b"--x--"),
        ("JSON, foreign Origin", {"Origin": EVIL}, "application/json", as_json),
        ("JSON, Sec-Fetch-Site cross-site", {"Sec-Fetch-Site": "cross-site"}, "application/json", as_json),
        ("JSON, Sec-Fetch-Site same-site", {"Sec-Fetch-Site": "same-site"}, "application/json", as_json),
        ("JSON, Origin null", {"Origin": "null"}, "application/json", as_json),
        ("JSON, a sibling app", {"Origin": f"https://other-{APP_HOST}"}, "application/json", as_json),
    ]


def send(method: str, url: str, headers: dict[str, str], content_type: str | None, body: bytes) -> requests.Response:
    request = requests.Request(method, url, headers=user(**headers), data=body).prepare()
    request.headers.pop("Content-Type", None)
    if content_type:
        request.headers["Content-Type"] = content_type
    with requests.Session() as session:
        return session.send(request, timeout=30)


def refused(response: requests.Response, shape: str) -> None:
    assert response.status_code in (403, 413, 415, 422), (shape, response.status_code, response.text[:300])


@pytest.fixture
def running(request, tmp_path, pg_server, workspace_stub, deployment) -> Iterator[tuple[apprunner.App, Any]]:
    framework = request.param
    client, dbname = deployment
    project = render(tmp_path / "out", framework=framework, driver=FRAMEWORKS[framework])
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    if framework == "streamlit":
        env.update(STREAMLIT_RUNTIME_ENV)
    ready = "/_stcore/health" if framework == "streamlit" else "/"
    with apprunner.running_app(project, env, tmp_path / "app.log", ready_path=ready) as app:
        if framework != "streamlit":
            assert requests.get(f"{app.url}/healthz", timeout=HANG_GUARD).status_code == 200, app.log_text()[-3000:]
        try:
            yield app, lambda: rows_in_db(pg_server, dbname)
        except BaseException:
            print(f"--- app log\n{app.log_text()[-6000:]}")
            raise


def assert_security_headers(response: requests.Response) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", dict(headers)
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), dict(headers)
    assert headers.get("X-Frame-Options") == "DENY", dict(headers)


@pytest.mark.parametrize("running", ["flask", "fastapi"], indirect=True)
def test_json_api_refuses_every_cross_site_shape(running) -> None:
    app, rows = running
    api = f"{app.url}/api/items"
    mine = requests.post(api, json={"title": "mine"}, headers=user(**own(app)), timeout=30)
    assert mine.status_code == 201, mine.text
    item = mine.json()["id"]
    before = rows()
    for shape, headers, content_type, body in shapes({"title": "evil"}):
        refused(send("POST", api, headers, content_type, body), shape)
        change = json.dumps({"title": "evil", "done": True}).encode()
        refused(send("PUT", f"{api}/{item}", headers, content_type, change), shape)
        if headers:  # a DELETE carries no body: only its origin tells (without one it is not from a web page)
            r = send("DELETE", f"{api}/{item}", headers, None, b"")
            assert r.status_code == 403, (shape, r.status_code, r.text)
            assert set(r.json()) == {"error", "field"} and "cross-site" in r.json()["error"], r.text
    assert rows() == before, "a refused request changed a row"

    # Behind the Apps proxy the Host is the app's address inside Databricks; X-Forwarded-Host is the one the
    # browser asked for (https://docs.databricks.com/aws/en/dev-tools/databricks-apps/http-headers).
    proxied = user(**{"X-Forwarded-Host": APP_HOST, "Origin": f"https://{APP_HOST}", "Sec-Fetch-Site": "same-origin"})
    r = requests.put(f"{api}/{item}", json={"title": "mine", "done": True}, headers=proxied, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.put(f"{api}/{item}", json={"title": "x", "done": False}, headers=user(Origin=f"https://{APP_HOST}"))
    assert r.status_code == 403, r.text  # the same Origin without the proxy's header is not this app
    assert requests.delete(f"{api}/{item}", headers=user(**own(app)), timeout=30).status_code == 204
    assert rows() == [], rows()

    page = requests.get(f"{app.url}/", timeout=30)
    assert_security_headers(page)
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    docs = requests.get(f"{app.url}/docs", timeout=30)  # Swagger UI's script would come from a CDN: not served
    assert docs.status_code == 404 and "cdn.jsdelivr.net" not in docs.text, docs.text[:300]
    assert_security_headers(requests.get(api, headers=user(), timeout=30))
    style = requests.get(f"{app.url}/static/style.css", timeout=30)
    assert style.status_code == 200 and style.headers["Content-Type"].startswith("text/css"), style.headers


@pytest.mark.parametrize("running", ["dash"], indirect=True)
def test_dash_callbacks_need_json_from_the_own_origin(running) -> None:
    app, rows = running
    ui = DashUi(app.url)
    url = f"{app.url}/_dash-update-component"
    for shape, headers, content_type, body in shapes(ui.change_body("add", title="evil")):
        if content_type == "application/json":
            body = json.dumps(ui.change_body("add", title="evil")).encode()  # a fresh click each time
        refused(send("POST", url, headers, content_type, body), shape)
    assert rows() == []
    r = requests.post(url, json=ui.change_body("add", title="mine"), headers=user(**own(app)), timeout=30)
    assert r.status_code == 200, r.text
    assert [title for _, title, _ in rows()] == ["mine"]
    page = requests.get(f"{app.url}/", timeout=30)
    assert_security_headers(page)
    assert "script-src 'self' 'sha256-" in page.headers["Content-Security-Policy"]  # no 'unsafe-inline' script
    assert "style.css" in page.text


@pytest.mark.parametrize("running", ["gradio"], indirect=True)
def test_gradio_call_api_and_uploads_refuse_other_origins(running) -> None:
    app, rows = running
    call = f"{app.url}/gradio_api/call/create_item"
    for shape, headers, content_type, body in shapes({"data": ["evil"]}):
        refused(send("POST", call, headers, content_type, body), shape)
    preflight = requests.options(call, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}, timeout=30)
    assert "access-control-allow-origin" not in {k.lower() for k in preflight.headers}, dict(preflight.headers)
    cross_read = requests.get(f"{app.url}/gradio_api/info", headers={"Origin": EVIL}, timeout=30)
    assert "access-control-allow-origin" not in {k.lower() for k in cross_read.headers}, dict(cross_read.headers)
    upload = f"{app.url}/gradio_api/upload"
    files = {"files": ("big.bin", b"x" * 4096)}
    foreign = requests.post(upload, files=files, headers=user(Origin=EVIL, **{"Sec-Fetch-Site": "cross-site"}))
    assert foreign.status_code == 403, foreign.text
    assert requests.post(upload, files=files, headers=user(**own(app)), timeout=30).status_code == 413  # no files
    assert rows() == []

    r = requests.post(call, json={"data": ["mine"]}, headers=user(**own(app)), timeout=30)
    assert r.status_code == 200, r.text
    result = requests.get(f"{call}/{r.json()['event_id']}", headers=user(**own(app)), timeout=30)
    assert "event: complete" in result.text, result.text[:2000]
    assert [title for _, title, _ in rows()] == ["mine"]
    page = requests.get(f"{app.url}/", timeout=30)
    assert_security_headers(page)
    assert "googleapis" not in page.text  # the theme's fonts are the system's: no CDN
    config = requests.get(f"{app.url}/config", timeout=30).json()
    assert config["show_error"] is False and config["max_file_size"] == 1, config  # no error text, no uploads


def websocket_answer(url: str, origin: str) -> str:
    """Open Streamlit's WebSocket as a browser on ``origin`` would: 'open', or the refusal."""
    try:
        ws = websocket.create_connection(url, origin=origin, subprotocols=["streamlit"], timeout=30)
    except websocket.WebSocketBadStatusException as refusal:
        return f"refused {refusal.status_code}"
    ws.close()
    return "open"


@pytest.mark.parametrize("running", ["streamlit"], indirect=True)
def test_streamlit_websocket_only_from_the_own_origin(running, pg_server) -> None:
    app, rows = running
    stream = f"ws://127.0.0.1:{app.port}/_stcore/stream"
    assert websocket_answer(stream, EVIL).startswith("refused"), app.log_text()[-3000:]
    assert websocket_answer(stream, f"https://other-{APP_HOST}").startswith("refused")
    # No session ran the script: the app (PGAPPNAME lakebase-e2e, tests/support/apprunner.py) never opened its pool.
    with pg_server.connect_superuser() as admin:
        opened = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lakebase-e2e'")
        assert opened.fetchone() == (0,)
    assert rows() == []
    assert websocket_answer(stream, f"http://127.0.0.1:{app.port}") == "open"
    # XSRF protection on (the runtime's variable says off): a write route without the token is refused
    health = requests.get(f"{app.url}/_stcore/health", timeout=30)
    assert "_streamlit_xsrf" in health.headers.get("Set-Cookie", ""), dict(health.headers)
    upload = requests.put(f"{app.url}/_stcore/upload_file/session/file", files={"file": ("a", b"x")}, timeout=30)
    assert upload.status_code == 403 and "XSRF" in upload.text, (upload.status_code, upload.text[:300])
