"""TLS in front of a PostgreSQL built without OpenSSL, speaking PostgreSQL's own TLS negotiation.

    python tls_proxy.py LISTEN_PORT BACKEND_PORT CERT KEY [--delay-ms N]

A client's SSLRequest is answered 'S' and the connection is wrapped in TLS here (what a server built
with OpenSSL does, https://www.postgresql.org/docs/16/protocol-flow.html#PROTOCOL-FLOW-SSL); a GSSENCRequest
is answered 'N'. Everything after that is passed through unchanged to the server on 127.0.0.1:BACKEND_PORT, so
scram-sha-256 and every check of pg_hba.conf still happen in PostgreSQL. A client that asks for no TLS
(sslmode=disable) is passed through as is. Runs in its own process, so that its work does not compete with the
tests' for one interpreter lock; prints "ready" once it listens and stops on SIGTERM.

--delay-ms N: every chunk, in either direction, is delivered N ms after it arrived, in order and without
waiting for the previous one (a delay line), so a round trip costs 2N ms more: a network between an app and
Lakebase. Off (the default): the plain pump, nothing delayed. (Round trips are counted by tests/support/pg_trace.py.)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import struct

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def _delayed_pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forward reader to writer: each chunk is written delay s after it arrived."""
    loop = asyncio.get_running_loop()
    line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=1024)

    async def read() -> None:
        while data := await reader.read(65536):
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
        await reading
    finally:
        reading.cancel()


async def _serve(client_r, client_w, backend: int, tls, delay: float) -> None:
    server_w = None
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
        server_w.write(first)
        if delay:
            pumps = [_delayed_pump(client_r, server_w, delay), _delayed_pump(server_r, client_w, delay)]
        else:
            pumps = [_pump(client_r, server_w), _pump(server_r, client_w)]
        tasks = [asyncio.ensure_future(p) for p in pumps]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass  # a client or the server went away: close both sides, as a dropped TCP connection would
    except asyncio.CancelledError:
        pass  # SIGTERM with connections open: they close with the proxy
    finally:
        for w in (client_w, server_w):
            if w is not None:
                w.close()


async def main(args: argparse.Namespace) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(args.cert, args.key)
    delay = args.delay_ms / 1000

    def serve(r, w):
        return _serve(r, w, args.backend, tls, delay)

    server = await asyncio.start_server(serve, "127.0.0.1", args.listen, backlog=512)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("listen", type=int)
    p.add_argument("backend", type=int)
    p.add_argument("cert")
    p.add_argument("key")
    p.add_argument("--delay-ms", type=float, default=0.0, help="added one-way latency per chunk")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_args()))
