"""Connection pool on psycopg2.

psycopg2's own pools raise instead of waiting when all connections are busy and
cannot change the password per connection, so this module keeps a small pool:
callers wait for a free slot, each NEW connection logs in with the current
Lakebase token, and a connection is checked before it is handed out.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from .credentials import PasswordSource, login
from .settings import SCHEMA, Settings

Params = dict[str, Any]
Connection = psycopg2.extensions.connection


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
        if conn.closed or time.monotonic() - opened > self._settings.pool_max_lifetime:
            return False
        try:  # the server may have closed it (restart, idle timeout, terminated backend)
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.rollback()
            return True
        except psycopg2.Error:
            return False

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
            conn, opened = self._checkout()
            try:
                yield conn
                conn.commit()
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
        with self._connection():
            pass

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def fetch_all(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        with self._connection() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(row) for row in cur.fetchall()]

    def fetch_one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        with self._connection() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return dict(row) if row is not None else None

    def execute(self, sql: str, params: Params | None = None) -> int:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def execute_script(self, statements: list[str]) -> None:
        """Run statements in one transaction."""
        with self._connection() as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            with self._connection(timeout=timeout) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        except Exception:
            return False
