"""Connection pool on psycopg2.

psycopg2's own pools raise instead of waiting when all connections are busy and
cannot change the password per connection, so this module keeps a small pool:
callers wait for a free slot, each NEW connection logs in with the current
Lakebase token, and work whose connection died before COMMIT runs again.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from .credentials import PasswordSource, login, login_refused
from .retry import CURRENT_TRANSACTION, TRANSACTION_STATUS, ConnectionLost, commit_outcome, run_again_if_lost, settle
from .settings import SCHEMA, Settings

Params = dict[str, Any]
Connection = psycopg2.extensions.connection
Cursor = psycopg2.extensions.cursor
T = TypeVar("T")


class PoolTimeout(RuntimeError):
    """No connection became free in time."""


class Database:
    def __init__(self, settings: Settings, passwords: PasswordSource) -> None:
        self._settings = settings
        self._passwords = passwords
        self._slots = threading.BoundedSemaphore(settings.pool_max_size)
        self._idle: list[tuple[Connection, float]] = []  # (connection, when it was opened)
        self._idle_lock = threading.Lock()

    def _connect(self) -> Connection:
        s = self._settings
        return login(
            lambda password: psycopg2.connect(
                host=s.host,
                port=s.port,
                dbname=s.database,
                user=s.user,
                password=password,
                sslmode=s.sslmode,
                application_name=s.application_name,
                connect_timeout=max(1, round(s.connect_timeout)),
                options=f"-c search_path={SCHEMA}",
            ),
            self._passwords,
        )

    def _usable(self, conn: Connection, opened: float) -> bool:
        return not conn.closed and time.monotonic() - opened < self._settings.pool_max_lifetime

    def _checkout(self) -> tuple[Connection, float]:
        while True:
            with self._idle_lock:
                if not self._idle:
                    break
                conn, opened = self._idle.pop()
            if self._usable(conn, opened):
                return conn, opened
            conn.close()
        return self._connect(), time.monotonic()

    @contextmanager
    def _connection(self, timeout: float | None = None) -> Iterator[Connection]:
        if not self._slots.acquire(timeout=self._settings.connect_timeout if timeout is None else timeout):
            raise PoolTimeout("no database connection became free in time")
        try:
            try:
                conn, opened = self._checkout()
            except psycopg2.OperationalError as error:
                if login_refused(error):
                    raise
                raise ConnectionLost from error  # the server is unreachable: try again until the deadline
            try:
                yield conn  # the caller commits
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise
            finally:
                if not conn.closed:  # a broken connection is dropped, not pooled
                    with self._idle_lock:
                        self._idle.append((conn, opened))
        finally:
            self._slots.release()

    def open(self) -> None:
        self._run(lambda cur: None)  # log in once, so a bad setting fails at start-up

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def _run(
        self, work: Callable[[Cursor], T], timeout: float | None = None, dict_rows: bool = False, writes: bool = True
    ) -> T:
        """One transaction on a pooled connection, committed when ``work`` returns; ``writes`` if it may write."""
        wait = self._settings.connect_timeout if timeout is None else timeout
        factory = psycopg2.extras.RealDictCursor if dict_rows else None

        def attempt() -> T:
            with self._connection(timeout=wait) as conn:
                xid, committing = None, False
                try:
                    if writes:
                        with conn.cursor() as cur:
                            cur.execute(CURRENT_TRANSACTION)
                            xid = cur.fetchone()[0]
                    with conn.cursor(cursor_factory=factory) as cur:
                        result = work(cur)
                    committing = True
                    conn.commit()
                    return result
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
                    if not conn.closed:
                        raise
                    settle(error, xid, committing, self._commit_outcome)
                    return result  # it committed before the connection died

        return run_again_if_lost(attempt, within=wait)

    def _commit_outcome(self, xid: str) -> bool | None:
        def status(cur: Cursor) -> str | None:
            cur.execute(TRANSACTION_STATUS, {"xid": xid})
            return cur.fetchone()[0]

        return commit_outcome(lambda: self._run(status, writes=False))

    def fetch_all(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        def fetch(cur: Cursor) -> list[dict[str, Any]]:
            cur.execute(sql, params)
            return [dict(row) for row in cur.fetchall()]

        return self._run(fetch, dict_rows=True, writes=False)

    def fetch_one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        def fetch(cur: Cursor) -> dict[str, Any] | None:
            cur.execute(sql, params)
            row = cur.fetchone()
            return dict(row) if row is not None else None

        return self._run(fetch, dict_rows=True)

    def execute(self, sql: str, params: Params | None = None) -> int:
        def run(cur: Cursor) -> int:
            cur.execute(sql, params)
            return cur.rowcount

        return self._run(run)

    def execute_script(self, statements: list[str]) -> None:
        """Run statements in one transaction."""

        def run_all(cur: Cursor) -> None:
            for statement in statements:
                cur.execute(statement)

        self._run(run_all)

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            self._run(lambda cur: cur.execute("SELECT 1"), timeout=timeout, writes=False)
            return True
        except Exception:
            return False
