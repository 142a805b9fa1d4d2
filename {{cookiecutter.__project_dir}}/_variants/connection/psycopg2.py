"""Connection pool on psycopg2.

psycopg2.pool is not used: it raises PoolError instead of waiting when every connection is out,
closes each connection handed back beyond ``minconn`` (a pool of 1..5 under load opens a
connection per request), never retires old connections, and opens every connection with the
arguments given once, so it cannot log in with the current token (psycopg2/pool.py). This
small pool waits for a free slot, keeps what it opened, retires connections after
DB_POOL_MAX_LIFETIME and logs each NEW one in with the current Lakebase token.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from .credentials import PasswordSource, login, login_refused
from .libpq import connect_args
from .pooled import (
    CURRENT_TRANSACTION,
    SET_USER,
    USER,
    ConnectionLost,
    DatabaseBusy,
    Done,
    Params,
    Pooled,
    Row,
    Statements,
    refuse_carried,
)
from .settings import Settings

Connection = psycopg2.extensions.connection
IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE


class Database(Pooled[Connection]):
    def __init__(self, settings: Settings, passwords: PasswordSource) -> None:
        super().__init__(settings.connect_timeout)
        self._settings = settings
        self._passwords = passwords
        self._slots = threading.BoundedSemaphore(settings.pool_max_size)
        self._idle: list[tuple[Connection, float]] = []  # (connection, when it was opened); a list.pop is atomic

    def _connect(self) -> tuple[Connection, float]:
        s = self._settings
        conn = login(
            lambda password: psycopg2.connect(
                **connect_args(s), password=password, cursor_factory=psycopg2.extras.RealDictCursor
            ),
            self._passwords,
        )
        return conn, time.monotonic()

    def open(self) -> None:
        self.fetch_all("SELECT 1 AS ok")  # log in once, so a bad setting fails at start-up

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    @contextmanager
    def _borrow(self, timeout: float, transaction: bool) -> Iterator[Connection]:
        if not self._slots.acquire(timeout=timeout):
            raise DatabaseBusy("no database connection became free in time")
        try:
            conn, opened = self._checkout()
            # Always autocommit: a write sends BEGIN itself, with its first statement (_begin). psycopg2 then
            # knows of no transaction (commit() and rollback() would do nothing), so COMMIT and ROLLBACK are
            # sent as statements; libpq still reports the server's transaction status (info.transaction_status).
            conn.autocommit = True
            try:
                yield conn
            finally:
                if not conn.closed:
                    if conn.info.transaction_status != IDLE:
                        self._count(conn, "ROLLBACK", None)
                    self._idle.append((conn, opened))
        finally:
            self._slots.release()

    def _checkout(self) -> tuple[Connection, float]:
        while self._idle:
            try:
                conn, opened = self._idle.pop()
            except IndexError:  # another thread took the last one
                break
            if not conn.closed and time.monotonic() - opened < self._settings.pool_max_lifetime:
                return conn, opened
            conn.close()
        try:
            return self._connect()
        except psycopg2.OperationalError as error:
            if login_refused(error):
                raise
            raise ConnectionLost from error  # the server is unreachable: try again until the deadline

    def _lost(self, error: BaseException, conn: Connection) -> bool:
        return isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError) and bool(conn.closed)

    def _rows(self, conn: Connection, sql: str, params: Params | None) -> list[Row]:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def _rows_as(self, conn: Connection, user: str, sql: str, params: Params | None) -> list[Row]:
        refuse_carried(params, USER)
        with conn.cursor() as cur:  # one simple query: both statements run in one implicit transaction
            cur.execute(f"{SET_USER}; {sql}", {**(params or {}), USER: user})  # psycopg2 binds client-side
            return cur.fetchall()  # the last statement's rows

    def _count(self, conn: Connection, sql: str, params: Params | None) -> int:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def _begin(self, conn: Connection, user: str | None, statements: Statements, returning: bool) -> tuple[str, Done]:
        # A write without a key (not the example feature's): one simple query opens the transaction and reads
        # its id (its last statement's rows), one round trip fewer than BEGIN alone. The statements of one Query
        # message run in order (PostgreSQL docs, protocol-flow "Multiple Statements in a Simple Query"), and
        # BEGIN's transaction outlasts the message.
        xid = self._rows(conn, f"BEGIN; {CURRENT_TRANSACTION}", {"app_user": user or ""})[0]["xid"]
        return xid, self._run(conn, statements, returning)  # psycopg2 has no pipeline: one round trip each

    def _commit(self, conn: Connection) -> None:
        self._count(conn, "COMMIT", None)
