"""What one request may cost, in every framework: a 10 MB body is refused before the app reads it (413 with the one
error body where the framework lets the app answer, else the framework's own refusal), and no process of the app
grows by it. The rendered app runs as the Apps runtime starts it (tests/support/apprunner.py), over real HTTP.

Memory is each process's peak resident size (VmHWM, reset through /proc/<pid>/clear_refs before the requests): an
app that read the body whole would peak at least 10 MB higher, even if it freed the body at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from tests.harness.ports import free_port
from tests.support import apprunner
from tests.support.http_api import ALICE
from tests.support.sockets import server_side
from tests.support.template import render
from tests.support.waiting import HANG_GUARD

pytestmark = pytest.mark.e2e

BIG = 10 * 1024 * 1024
PIECE = 64 * 1024
GROWTH = 4 * 1024 * 1024  # bytes of peak memory a refused 10 MB request may add to any process of the app
FRAMEWORKS = {
    "flask": "psycopg3",
    "fastapi": "asyncpg",
    "dash": "psycopg2",
    "gradio": "psycopg3",
    "streamlit": "psycopg3",
}
# The routes that take a body, per framework: (method, path)
ROUTES = {
    "flask": [("POST", "/api/items"), ("PUT", "/api/items/1")],
    "fastapi": [("POST", "/api/items"), ("PUT", "/api/items/1")],
    "dash": [("POST", "/_dash-update-component")],
    "gradio": [("POST", "/gradio_api/queue/join"), ("POST", "/gradio_api/call/create_item")],
    "streamlit": [("PUT", "/_stcore/upload_file/session/file")],
}


# ---------------------------------------------------------------------------------------------- measuring
def app_processes(app: apprunner.App) -> list[int]:
    """The app's processes: its process group (gunicorn's workers, Streamlit's children included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry.name)) == app.proc.pid:
                    pids.append(int(entry.name))
    return pids


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peaks(pids: list[int]) -> dict[int, int]:
    """Each process's resident size now (bytes), with its peak reset to it."""
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # "5": reset the peak RSS (proc(5))
    return {pid: kib(pid, "VmRSS") * 1024 for pid in pids}


def growth(before: dict[int, int]) -> dict[int, int]:
    """How far above its resident size at reset_peaks() each process peaked since (bytes)."""
    return {pid: kib(pid, "VmHWM") * 1024 - rss for pid, rss in before.items()}


# ---------------------------------------------------------------------------------------------- sending
def read_answer(sock: socket.socket) -> tuple[int | None, dict[str, str], bytes]:
    """The HTTP answer on `sock` (status, headers, body), or (None, {}, b"") when it was closed unanswered."""
    data = b""
    with contextlib.suppress(OSError):  # a reset after the answer arrived: the answer is what was read
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head = data.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
        length = next((int(line.split(":")[1]) for line in head.splitlines() if line.startswith("content-length:")), 0)
        while len(data.partition(b"\r\n\r\n")[2]) < length and (chunk := sock.recv(65536)):
            data += chunk
    if not data:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def send_big(
    url: str, method: str, path: str, chunked: bool, headers: dict[str, str]
) -> tuple[int | None, dict[str, str], bytes, int]:
    """Send a 10 MB JSON-looking body 64 KiB at a time, stopping as soon as the app answers or closes: the answer
    (see read_answer) and how many body bytes went out."""
    host, port = url.removeprefix("http://").split(":")
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(BIG)}
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        *(f"{k}: {v}" for k, v in {**headers, **framing}.items()),
    ]
    piece = b'{"title": "' + b"x" * (PIECE - 11)
    sent = 0
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        with contextlib.suppress(OSError):  # the app closed while the body was still coming
            while sent < BIG and not select.select([sock], [], [], 0)[0]:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked and sent >= BIG:
                sock.sendall(b"0\r\n\r\n")
        status, answer_headers, body = read_answer(sock)
    return status, answer_headers, body, sent


def refused_unread(framework: str, answer: tuple[int | None, dict[str, str], bytes, int], what: str) -> None:
    status, headers, body, sent = answer
    if framework == "streamlit":  # Streamlit's own refusal (its upload route checks the session first), or closed
        assert status in (400, 413, None), (what, status, body[:300])
        return
    assert status == 413, (what, status, body[:300], sent)
    assert headers.get("content-type", "").startswith("application/json"), (what, headers)
    refusal = json.loads(body)
    assert refusal["field"] == "body" and set(refusal) == {"error", "field"}, (what, refusal)
    assert "bytes" in refusal["error"], refusal


def streamlit_xsrf(app: apprunner.App) -> dict[str, str]:
    """What Streamlit's own page sends with an upload: its XSRF cookie and the same token in a header."""
    cookie = requests.get(f"{app.url}/_stcore/health", timeout=HANG_GUARD).cookies["_streamlit_xsrf"]
    return {"Cookie": f"_streamlit_xsrf={cookie}", "X-Xsrftoken": cookie}


def websocket_close_code(app: apprunner.App, size: int) -> int | None:
    """Start one `size`-byte message on Streamlit's WebSocket, as the app's own page, and send 64 KiB of it: the
    close code the app answers with (a server that takes the message waits for the rest instead)."""
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{app.port}/_stcore/stream", origin=app.url, subprotocols=["streamlit"], timeout=HANG_GUARD
    )
    try:
        mask = os.urandom(4)
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, size) + mask  # FIN, binary; masked, 64-bit length
        part = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\0" * PIECE))
        with contextlib.suppress(OSError):
            ws.sock.sendall(head + part)
        while True:
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except (OSError, websocket.WebSocketException):
                return None  # closed without a close frame
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
    finally:
        ws.close()


# ---------------------------------------------------------------------------------------------- the app
@pytest.fixture
def running(request, tmp_path, pg_server, workspace_stub, deployment) -> Iterator[tuple[str, apprunner.App]]:
    framework = request.param
    client, dbname = deployment
    project = render(tmp_path / "out", framework=framework, driver=FRAMEWORKS[framework])
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    ready = "/_stcore/health" if framework == "streamlit" else "/healthz"
    with apprunner.running_app(project, env, tmp_path / "app.log", ready_path=ready) as app:
        try:
            yield framework, app
        except BaseException:
            print(f"--- app log\n{app.log_text()[-6000:]}")
            raise


@pytest.mark.parametrize("running", list(FRAMEWORKS), indirect=True)
def test_a_10_mb_body_is_refused_unread(running: tuple[str, apprunner.App]) -> None:
    framework, app = running
    headers: dict[str, Any] = {"X-Forwarded-Email": ALICE, "Content-Type": "application/json"}
    if framework == "streamlit":
        headers = {**streamlit_xsrf(app), "Content-Type": "multipart/form-data; boundary=x"}
    for method, path in ROUTES[framework]:  # warm up: the route's first request may load code
        requests.request(method, f"{app.url}{path}", data=b"{}", headers=headers, timeout=HANG_GUARD)
    before = reset_peaks(app_processes(app))
    for method, path in ROUTES[framework]:
        for chunked in (False, True):
            what = f"{method} {path} {'chunked' if chunked else 'Content-Length'}"
            refused_unread(framework, send_big(app.url, method, path, chunked, headers), what)
    if framework == "streamlit":  # and a WebSocket message over server.maxMessageSize: closed, "message too big"
        assert websocket_close_code(app, BIG) in (1009, None)  # None: closed at once, before its close frame arrived
    grown = growth(before)
    assert max(grown.values()) < GROWTH, {pid: f"{size / 2**20:.1f} MiB" for pid, size in grown.items()}
    assert requests.get(f"{app.url}/{'_stcore/health' if framework == 'streamlit' else 'healthz'}").ok  # serves on


# ---------------------------------------------------------------------------------------------- slow clients
SLOW_CLIENTS = 20
GTHREAD_SLOTS = 8  # one gunicorn gthread worker's pool (--threads=8), as the app ran before: the attack fills it
# /healthz's own deadline: its ping waits 2 s for a connection (database/pooled.py, ping), plus 1 s for the answer
HEALTH_DEADLINE = 3.0


@pytest.mark.parametrize("running", ["flask", "dash"], indirect=True)
def test_slow_clients_do_not_starve_healthz(running: tuple[str, apprunner.App]) -> None:
    """20 clients each declare a body at the cap and send it a byte at a time; meanwhile /healthz still answers
    within its own deadline, and so does a normal request."""
    framework, app = running
    host, port = app.url.removeprefix("http://").split(":")
    method, path = ROUTES[framework][0]
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-Forwarded-Email: {ALICE}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {16 * 1024}\r\n\r\n{{"
    ).encode()
    requests.get(f"{app.url}/healthz", timeout=HANG_GUARD)  # warm: the first call opens the pool
    stop = threading.Event()
    clients = [socket.create_connection((host, int(port)), timeout=HANG_GUARD) for _ in range(SLOW_CLIENTS)]

    def trickle() -> None:
        while not stop.wait(0.2):  # one byte of JSON whitespace per client, five times a second
            for client in clients:
                with contextlib.suppress(OSError):
                    client.sendall(b" ")

    for client in clients:
        client.sendall(head)
    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        # until the app has taken up as many trickling requests as the old thread pool could hold (the kernel
        # shows their bytes read by the app)
        deadline = time.monotonic() + HANG_GUARD
        while sum(1 for _, unread in server_side(int(port)) if unread == 0) < GTHREAD_SLOTS:
            assert time.monotonic() < deadline and app.proc.poll() is None, server_side(int(port))
            time.sleep(0.05)
        for url in (f"{app.url}/healthz", f"{app.url}/api/me" if framework == "flask" else f"{app.url}/"):
            try:
                answer = requests.get(url, headers={"X-Forwarded-Email": ALICE}, timeout=HEALTH_DEADLINE)
            except requests.Timeout:
                pytest.fail(f"{url} gave no answer within {HEALTH_DEADLINE} s while {SLOW_CLIENTS} clients trickled")
            assert answer.ok, (url, answer.status_code, answer.text[:300])
    finally:
        stop.set()
        sender.join()
        for client in clients:
            client.close()


def test_bodies_arriving_at_once_have_a_bound(tmp_path, pg_server, workspace_stub, deployment) -> None:
    """Dash, one process: 16 slow bodies at the 1 MiB cap fill its room for bodies (serving.BUFFERED_BYTES); one
    more is answered 503 with Retry-After at once, unread, while /healthz and the page still answer."""
    client, dbname = deployment
    project = render(tmp_path / "out", framework="dash", driver=FRAMEWORKS["dash"])
    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    env["WEB_CONCURRENCY"] = "1"
    with apprunner.running_app(project, env, tmp_path / "app.log", ready_path="/healthz") as app:
        host, port = app.url.removeprefix("http://").split(":")
        head = (
            f"POST /_dash-update-component HTTP/1.1\r\nHost: {host}:{port}\r\nX-Forwarded-Email: {ALICE}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {1024 * 1024}\r\n\r\n{{"
        ).encode()
        slow = []
        try:
            for _ in range(16):
                slow.append(socket.create_connection((host, int(port)), timeout=HANG_GUARD))
                slow[-1].sendall(head)
            # until the app has read all 16 heads (their bytes left the kernel's queue)
            deadline = time.monotonic() + HANG_GUARD
            while sum(1 for _, unread in server_side(int(port)) if unread == 0) < 16:
                assert time.monotonic() < deadline and app.proc.poll() is None, server_side(int(port))
                time.sleep(0.05)
            with socket.create_connection((host, int(port)), timeout=HANG_GUARD) as one_more:
                one_more.sendall(head)
                status, headers, body = read_answer(one_more)
            assert status == 503 and int(headers["retry-after"]) >= 1, (status, headers, body[:300])
            assert set(json.loads(body)) == {"error", "field"}, body
            for path in ("/healthz", "/"):
                answer = requests.get(f"{app.url}{path}", headers={"X-Forwarded-Email": ALICE}, timeout=HEALTH_DEADLINE)
                assert answer.ok, (path, answer.status_code)
        except BaseException:
            print(f"--- app log\n{app.log_text()[-6000:]}")
            raise
        finally:
            for sock in slow:
                sock.close()
