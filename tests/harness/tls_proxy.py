"""TLS in front of a PostgreSQL built without OpenSSL, speaking PostgreSQL's own TLS negotiation.

    python tls_proxy.py LISTEN_PORT BACKEND_PORT CERT KEY

A client's SSLRequest is answered 'S' and the connection is wrapped in TLS here (what a server built
with OpenSSL does, https://www.postgresql.org/docs/16/protocol-flow.html#PROTOCOL-FLOW-SSL); a GSSENCRequest
is answered 'N'. Everything after that is passed through unchanged to the server on 127.0.0.1:BACKEND_PORT, so
scram-sha-256 and every check of pg_hba.conf still happen in PostgreSQL. A client that asks for no TLS
(sslmode=disable) is passed through as is. Runs in its own process, so that its work does not compete with the
tests' for one interpreter lock; prints "ready" once it listens and stops on SIGTERM.
"""

import asyncio
import signal
import ssl
import struct
import sys

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def _serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, backend: int, tls) -> None:
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
        pumps = [asyncio.ensure_future(_pump(client_r, server_w)), asyncio.ensure_future(_pump(server_r, client_w))]
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass  # a client or the server went away: close both sides, as a dropped TCP connection would
    finally:
        for w in (client_w, server_w):
            if w is not None:
                w.close()


async def main(listen: int, backend: int, cert: str, key: str) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(cert, key)
    server = await asyncio.start_server(lambda r, w: _serve(r, w, backend, tls), "127.0.0.1", listen, backlog=512)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]))
