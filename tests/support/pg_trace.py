"""A plaintext PostgreSQL proxy on 127.0.0.1 that counts, per connection, round trips and statements.

Standard library only, so it runs inside a rendered app's own python (tests/test_round_trips.py,
bench/round_trips.py) in a thread beside the app's Database. What it counts, from the wire:

- flights: times the client sends after it has received something since its last send. A client that waits
  for an answer before it sends again pays one round trip per flight; one that sends many messages at once
  (a pipeline) pays one. A flight of Flush ('H') messages alone is not counted: Flush asks for what the server
  has, no answer of its own, and psycopg sends one after its Sync that may leave after the answer arrived.
- statements: Query ('Q', simple protocol: one message, however many statements it holds) and Execute ('E',
  extended protocol) messages (PostgreSQL docs, protocol-message-formats).

``cut_next_commit()`` arms a fault: the next COMMIT a client sends reaches the server, and then the connection
is closed before its answer comes back (a COMMIT whose answer is lost). ``cut_next_call(fragment)`` does the same
to the next statement whose SQL holds ``fragment`` (a write in one statement, such as asyncpg's ``create_item(``),
also when it is sent as a Bind of a statement prepared earlier on that connection.

The client must not ask for TLS (PGSSLMODE=disable): the proxy reads the protocol in clear.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from dataclasses import dataclass


@dataclass
class Counts:
    flights: int = 0
    statements: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.flights - other.flights, self.statements - other.statements)


class _Connection:
    def __init__(self) -> None:
        self.counts = Counts()
        self.answered = True  # the server has sent something since the client's last send
        self.started = False  # past the startup message (which has no type byte)
        self.pending = b""  # the client's bytes not yet parsed into whole messages
        self.flights: list[str] = []  # the message types of each flight, as sent: "PBDES", "Q"...
        self.counted = False  # the current flight was counted (it holds more than Flush)
        self.committing = False  # the client's data just parsed held the statement a fault is armed for
        self.prepared: dict[bytes, bytes] = {}  # each prepared statement's name and SQL (Parse messages)

    def from_client(self, data: bytes, armed: bytes | None = None) -> None:
        if self.answered:
            self.answered, self.counted = False, False
            self.flights.append("")
        self.pending += data
        while True:
            if not self.started:
                if len(self.pending) < 4:
                    return
                (length,) = struct.unpack("!I", self.pending[:4])
                if len(self.pending) < length:
                    return
                self.pending, self.started = self.pending[length:], True
                self._sent(b"0")  # the startup message (or SSLRequest): "0" in flights
                continue
            if len(self.pending) < 5:
                return
            kind = self.pending[:1]
            (length,) = struct.unpack("!I", self.pending[1:5])
            if len(self.pending) < 1 + length:
                return
            self._sent(kind)
            if self._holds(kind, self.pending[5 : 1 + length], armed):
                self.committing = True
            self.pending = self.pending[1 + length :]

    def _holds(self, kind: bytes, body: bytes, armed: bytes | None) -> bool:
        """Whether this message sends the statement ``armed`` is for (COMMIT: a simple Query of just that)."""
        if armed is None and kind != b"P":
            return False
        if kind == b"Q":
            sql = body.rstrip(b"\x00").strip()
            return sql.upper() == armed if armed == b"COMMIT" else armed in sql
        if kind == b"P":  # statement name, SQL, ...: remembered for the Binds that run it later
            name, sql = body.split(b"\x00", 2)[:2]
            self.prepared[name] = sql
        elif kind == b"B" and armed is not None:  # portal name, statement name, ...
            return armed != b"COMMIT" and armed in self.prepared.get(body.split(b"\x00", 2)[1], b"")
        return False

    def _sent(self, kind: bytes) -> None:
        if kind in (b"Q", b"E"):
            self.counts.statements += 1
        if kind != b"H" and not self.counted:
            self.counts.flights += 1
            self.counted = True
        self.flights[-1] += kind.decode("ascii", "replace")

    def from_server(self) -> None:
        self.answered = True


class Tracer:
    """Listens on 127.0.0.1:``port`` (0: any free port), forwards to 127.0.0.1:``backend``; ``totals()`` sums
    every connection's counts so far (open or closed)."""

    def __init__(self, backend: int) -> None:
        self.backend = backend
        self.port = 0
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="pg-trace", daemon=True)
        self._cut: bytes | None = None  # what the armed fault waits for
        self.cuts = 0  # connections closed by the fault, after their statement reached the server

    def cut_next_commit(self) -> None:
        with self._lock:
            self._cut = b"COMMIT"

    def cut_next_call(self, fragment: str) -> None:
        with self._lock:
            self._cut = fragment.encode()

    def start(self) -> Tracer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def flights(self) -> list[str]:
        """Every connection's flights so far, in order (message types, for a reader: "PBDES", "Q", ...)."""
        with self._lock:
            return [flight for connection in self._connections for flight in connection.flights]

    def totals(self) -> Counts:
        with self._lock:
            return Counts(
                sum(c.counts.flights for c in self._connections), sum(c.counts.statements for c in self._connections)
            )

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        traced = _Connection()
        with self._lock:
            self._connections.append(traced)
        server_w = None
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.backend)

            async def upstream() -> None:
                while data := await client_r.read(65536):
                    with self._lock:
                        traced.committing = False
                        traced.from_client(data, self._cut)
                        cut = self._cut is not None and traced.committing
                        if cut:
                            self._cut, self.cuts = None, self.cuts + 1
                    server_w.write(data)
                    await server_w.drain()
                    if cut:  # the statement is on its way to the server; its answer never reaches the client
                        client_w.transport.abort()
                        return

            async def downstream() -> None:
                while data := await server_r.read(65536):
                    with self._lock:  # recorded before the client can see it, so its next send is a new flight
                        traced.from_server()
                    client_w.write(data)
                    await client_w.drain()

            pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        except OSError:
            pass
        finally:
            for w in (client_w, server_w):
                if w is not None:
                    w.close()
