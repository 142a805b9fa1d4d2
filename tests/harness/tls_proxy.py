"""TLS in front of a PostgreSQL built without OpenSSL, speaking PostgreSQL's own TLS negotiation.

    python tls_proxy.py LISTEN_PORT BACKEND_PORT CERT KEY [--delay-ms N] [--trace]

A client's SSLRequest is answered 'S' and the connection is wrapped in TLS here (what a server built
with OpenSSL does, https://www.postgresql.org/docs/16/protocol-flow.html#PROTOCOL-FLOW-SSL); a GSSENCRequest
is answered 'N'. Everything after that is passed through unchanged to the server on 127.0.0.1:BACKEND_PORT, so
scram-sha-256 and every check of pg_hba.conf still happen in PostgreSQL. A client that asks for no TLS
(sslmode=disable) is passed through as is. Runs in its own process, so that its work does not compete with the
tests' for one interpreter lock; prints "ready" (with --trace: "ready TRACE_PORT") once it listens and stops on
SIGTERM.

--delay-ms N: every chunk, in either direction, is delivered N ms after it arrived, in order and without
waiting for the previous one (a delay line), so a round trip costs 2N ms more: a network between an app and
Lakebase. --trace: per connection, counts client flights (round trips: the client sends after the server's bytes
reached it), statements ('Q' Query and 'E' Execute frontend messages) and the StartupMessage's application_name,
served as JSON on http://127.0.0.1:TRACE_PORT/ (GET /counts; POST /reset zeroes them and drops closed ones).
Both off (the default): the plain pump, nothing counted, nothing delayed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import ssl
import struct
from collections.abc import Callable

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
# Message formats: https://www.postgresql.org/docs/16/protocol-message-formats.html
STATEMENT_TYPES = (ord("Q"), ord("E"))  # Query (simple protocol), Execute (extended protocol)
READY_FOR_QUERY = ord("Z")  # the first one ends the startup/authentication exchange


class Frames:
    """Splits one direction of the plaintext protocol into messages: type byte + int32 length (self-inclusive).

    A frontend stream starts with one untyped message (StartupMessage / CancelRequest: int32 length first).
    Only the messages counted are handed to on_message; other long bodies are skipped, not buffered.
    """

    def __init__(self, on_message: Callable[[int, bytes], None], untyped_first: bool) -> None:
        self.on_message = on_message
        self.untyped = untyped_first
        self.buf = bytearray()
        self.to_skip = 0

    def feed(self, data: bytes) -> None:
        if self.to_skip:
            n = min(self.to_skip, len(data))
            self.to_skip -= n
            data = data[n:]
            if not data:
                return
        buf = self.buf
        buf += data
        pos = 0
        while True:
            head = 4 if self.untyped else 5
            if len(buf) - pos < head:
                break
            (length,) = struct.unpack_from("!I", buf, pos + head - 4)
            end = pos + head - 4 + length
            if len(buf) < end:
                if self.untyped or buf[pos] in STATEMENT_TYPES or buf[pos] == READY_FOR_QUERY:
                    break  # short messages: wait for the rest
                self.to_skip = end - len(buf)  # a long one (COPY data, a big Bind): drop its body as it passes
                pos = len(buf)
                break
            if self.untyped:
                self.on_message(-1, bytes(buf[pos + 4 : end]))
                self.untyped = False
            elif buf[pos] in STATEMENT_TYPES or buf[pos] == READY_FOR_QUERY:
                self.on_message(buf[pos], bytes(buf[pos + 5 : end]))
            pos = end
        del buf[:pos]


class Conn:
    """What --trace knows of one client connection."""

    ids = itertools.count(1)

    def __init__(self) -> None:
        self.id = next(Conn.ids)
        self.application_name = ""
        self.open = True
        self.ready = False  # the server has sent its first ReadyForQuery: startup and authentication are over
        self.delivered = True  # server bytes reached the client since its last send (its first send is a flight)
        self.startup_flights = 0
        self.flights = 0
        self.statements = 0
        self.up = Frames(self._frontend, untyped_first=True)
        self.down = Frames(self._backend, untyped_first=False)

    def _frontend(self, mtype: int, body: bytes) -> None:
        if mtype == -1:
            if len(body) >= 4 and struct.unpack_from("!I", body)[0] >> 16 == 3:  # protocol 3.x StartupMessage
                parts = body[4:].split(b"\0")
                params = dict(zip(parts[0::2], parts[1::2], strict=False))
                self.application_name = params.get(b"application_name", b"").decode(errors="replace")
        else:
            self.statements += 1

    def _backend(self, mtype: int, _: bytes) -> None:
        if mtype == READY_FOR_QUERY:
            self.ready = True

    def client_sent(self, data: bytes) -> None:
        if self.delivered:
            self.delivered = False
            if self.ready:
                self.flights += 1
            else:
                self.startup_flights += 1
        self.up.feed(data)

    def server_sent(self, data: bytes) -> None:
        self.down.feed(data)

    def as_dict(self) -> dict:
        keys = ("id", "application_name", "open", "startup_flights", "flights", "statements")
        return {k: getattr(self, k) for k in keys}


CONNS: dict[int, Conn] = {}


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def _traced_pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    on_read: Callable[[bytes], None] | None,
    on_written: Callable[[], None] | None,
) -> None:
    """Forward reader to writer: each chunk is seen by on_read as it arrives and written delay s later."""
    loop = asyncio.get_running_loop()
    line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=1024)

    async def read() -> None:
        while data := await reader.read(65536):
            if on_read is not None:
                on_read(data)
            await line.put((loop.time() + delay, data))
        await line.put((loop.time() + delay, b""))

    reading = asyncio.ensure_future(read())
    try:
        while True:
            due, data = await line.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            if on_written is not None:
                on_written()
        await reading
    finally:
        reading.cancel()


async def _serve(client_r, client_w, backend: int, tls, delay: float, trace: bool) -> None:
    server_w = None
    conn = None
    try:
        first = await client_r.readexactly(8)
        if struct.unpack("!II", first) == (8, GSSENC_REQUEST):
            client_w.write(b"N")
            await client_w.drain()
            first = await client_r.readexactly(8)
        if struct.unpack("!II", first) == (8, SSL_REQUEST):
            client_w.write(b"S")
            await client_w.drain()
            await client_w.start_tls(tls)
            first = b""
        server_r, server_w = await asyncio.open_connection("127.0.0.1", backend)
        if trace:
            conn = Conn()
            CONNS[conn.id] = conn
            if first:
                conn.client_sent(first)
        server_w.write(first)
        if conn is None and not delay:
            pumps = [_pump(client_r, server_w), _pump(server_r, client_w)]
        else:
            up = conn.client_sent if conn else None
            down = conn.server_sent if conn else None
            arrived = (lambda: setattr(conn, "delivered", True)) if conn else None
            pumps = [
                _traced_pump(client_r, server_w, delay, up, None),
                _traced_pump(server_r, client_w, delay, down, arrived),
            ]
        tasks = [asyncio.ensure_future(p) for p in pumps]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass  # a client or the server went away: close both sides, as a dropped TCP connection would
    finally:
        if conn is not None:
            conn.open = False
        for w in (client_w, server_w):
            if w is not None:
                w.close()


async def _control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """GET /counts: every connection's counts; POST /reset: the same, then zeroed (closed ones dropped)."""
    try:
        request = await reader.readuntil(b"\r\n\r\n")
        method, path = request.split(b" ", 2)[:2]
        body = json.dumps([c.as_dict() for c in CONNS.values()]).encode()
        if method == b"POST" and path == b"/reset":
            for cid, c in list(CONNS.items()):
                if not c.open:
                    del CONNS[cid]
                c.startup_flights = c.flights = c.statements = 0
        elif not (method == b"GET" and path == b"/counts"):
            writer.write(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        head = f"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(args.cert, args.key)
    delay = args.delay_ms / 1000

    def serve(r, w):
        return _serve(r, w, args.backend, tls, delay, args.trace)

    server = await asyncio.start_server(serve, "127.0.0.1", args.listen, backlog=512)
    ready = "ready"
    control = None
    if args.trace:
        control = await asyncio.start_server(_control, "127.0.0.1", 0)
        ready += f" {control.sockets[0].getsockname()[1]}"
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(ready, flush=True)
    async with server:
        await stop.wait()
    if control is not None:
        control.close()


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("listen", type=int)
    p.add_argument("backend", type=int)
    p.add_argument("cert")
    p.add_argument("key")
    p.add_argument("--delay-ms", type=float, default=0.0, help="added one-way latency per chunk")
    p.add_argument("--trace", action="store_true", help="count flights and statements, served on a control port")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_args()))
