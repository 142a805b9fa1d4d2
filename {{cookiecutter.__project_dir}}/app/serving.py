"""How gunicorn serves the WSGI app: its asyncio worker (``-k asgi``, app.yaml) reads each request whole on the
event loop, and only then hands it to one of THREADS threads, which runs the app as before.

With gunicorn's thread worker a request holds a thread from its first byte to its last: 20 clients that send a
body a byte at a time took every thread, and /healthz waited as long as they trickled (gunicorn has no timeout
for reading a body; workers/gthread.py waits on the first byte only). Here a slow client costs a coroutine and a
buffer of at most the body cap (body_cap.py), never a thread, and BUFFERED_BYTES bounds what all of them hold. A
body declared over the cap is not read at all, and a chunked one is read until it is over the cap and then
dropped: the app refuses both (413) on their length, as it did.
"""

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import body_cap

THREADS = 8  # requests one process runs at once, as gunicorn --threads=8 gave
BUFFERED_BYTES = 16 * 1024 * 1024
"""Room for bodies one process holds while they arrive, each counted at its declared size up to the cap: as much as
16 threads each reading a body at the largest cap held before. A body that does not fit is answered 503 (try again)
unread; requests without a body (/healthz, pages) never wait for room."""
BUSY = b'{"error": "the server is busy receiving other requests: try again shortly", "field": null}'

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Buffered:
    """An ASGI app that runs a WSGI app on a thread pool once the request's body has arrived."""

    def __init__(self, app: WSGIApp, threads: int = THREADS) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="wsgi")
        self.buffered = 0  # bytes reserved by bodies arriving now (one event loop: no lock needed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":  # startup: nothing to start
                await send({"type": "lifespan.startup.complete"})
            self.pool.shutdown(wait=True)
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":  # the page opens no WebSocket
            return
        declared = _declared_length(scope)
        chunked = any(name == b"transfer-encoding" for name, _ in scope["headers"])
        if declared is not None and declared > body_cap.MAX_BODY_BYTES:
            body, length = b"", declared  # the app refuses it on its Content-Length (413)
        else:
            room = body_cap.MAX_BODY_BYTES + 1 if chunked else declared or 0
            if room and self.buffered + room > BUFFERED_BYTES:
                await _busy(send)
                return
            self.buffered += room
            try:
                body, arrived = await _body(receive)
            finally:
                self.buffered -= room
            # a declared length stands when fewer bytes came (the client left): the app sees a short body
            length = declared if declared is not None else arrived
        environ = _environ(scope, body, length)
        status, headers, chunks = await asyncio.get_running_loop().run_in_executor(self.pool, self._run, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        result = self.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return int(status.split(" ", 1)[0]), encoded, chunks


async def _busy(send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BUSY)).encode()),
        (b"retry-after", b"2"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": BUSY})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


async def _body(receive: Receive) -> tuple[bytes, int]:
    """The body and how many bytes of it arrived. One over MAX_BODY_BYTES is read only until it is over, and not
    kept: the app refuses it on its length alone (413), as it does a declared one, so it never costs a copy."""
    chunks: list[bytes] = []
    length = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        length += len(chunk)
        if length > body_cap.MAX_BODY_BYTES:
            return b"", length
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), length


def _environ(scope: Scope, body: bytes, length: int) -> dict[str, Any]:
    """PEP 3333's environ for an ASGI HTTP scope (the path as latin-1 of its UTF-8, as WSGI servers pass it)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        # the length the client declared, else what arrived: over the cap, the app refuses it without reading
        "CONTENT_LENGTH": str(length),
    }
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name in ("content-length", "transfer-encoding") or "_" in name:  # X_Forwarded_Email would pass as a
            continue  # proxy header: WSGI servers drop such names (gunicorn: header_map)
        key = "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ
