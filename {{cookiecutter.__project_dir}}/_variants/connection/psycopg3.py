"""Connection pool on psycopg 3 and psycopg_pool.

Every NEW connection logs in through ``TokenConnection.connect`` with the
current Lakebase token; connections already open are left alone.
"""

from collections.abc import Callable
from typing import Any, Self, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .credentials import PasswordSource, login
from .retry import CURRENT_TRANSACTION, TRANSACTION_STATUS, commit_outcome, run_again_if_lost, settle
from .settings import SCHEMA, Settings

Params = dict[str, Any]
T = TypeVar("T")


class TokenConnection(psycopg.Connection):
    """Logs in with the current token of the ``password_source`` the pool passes along."""

    @classmethod
    def connect(cls, conninfo: str = "", *, password_source: PasswordSource, **kwargs: Any) -> Self:  # type: ignore[override]
        parent = super().connect
        return login(lambda password: parent(conninfo, password=password, **kwargs), password_source)


class Database:
    def __init__(self, settings: Settings, passwords: PasswordSource) -> None:
        self._settings = settings
        self._pool = ConnectionPool(
            conninfo="",
            connection_class=TokenConnection,
            kwargs={**self._connect_kwargs(), "password_source": passwords},
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            max_lifetime=settings.pool_max_lifetime,
            timeout=settings.connect_timeout,
            check=ConnectionPool.check_connection,  # drops connections the server closed
            name=settings.application_name,
            open=False,
        )

    def _connect_kwargs(self) -> dict[str, Any]:
        s = self._settings
        return {
            "host": s.host,
            "port": s.port,
            "dbname": s.database,
            "user": s.user,
            "sslmode": s.sslmode,
            "application_name": s.application_name,
            "connect_timeout": max(1, round(s.connect_timeout)),
            "options": f"-c search_path={SCHEMA}",
            "row_factory": dict_row,
        }

    def open(self) -> None:
        self._pool.open()

    def close(self) -> None:
        self._pool.close()

    def _run(self, work: Callable[[psycopg.Connection], T], timeout: float | None = None, writes: bool = True) -> T:
        """One transaction on a pooled connection, committed when ``work`` returns; ``writes`` if it may write."""
        wait = self._settings.connect_timeout if timeout is None else timeout

        def attempt() -> T:
            with self._pool.connection(timeout=wait) as conn:
                xid, committing = None, False
                try:
                    if writes:
                        xid = conn.execute(CURRENT_TRANSACTION).fetchone()["xid"]
                    result = work(conn)
                    committing = True
                    conn.commit()
                    return result
                except psycopg.OperationalError as error:
                    if not conn.broken:
                        raise
                    settle(error, xid, committing, self._commit_outcome)
                    return result  # it committed before the connection died

        return run_again_if_lost(attempt, within=wait)

    def _commit_outcome(self, xid: str) -> bool | None:
        def status(conn: psycopg.Connection) -> str | None:
            return conn.execute(TRANSACTION_STATUS, {"xid": xid}).fetchone()["status"]

        return commit_outcome(lambda: self._run(status, writes=False))

    def fetch_all(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall(), writes=False)

    def fetch_one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        return self._run(lambda conn: conn.execute(sql, params).fetchone())

    def execute(self, sql: str, params: Params | None = None) -> int:
        return self._run(lambda conn: conn.execute(sql, params).rowcount)

    def execute_script(self, statements: list[str]) -> None:
        """Run statements in one transaction."""

        def run_all(conn: psycopg.Connection) -> None:
            for statement in statements:
                conn.execute(statement)

        self._run(run_all)

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            self._run(lambda conn: conn.execute("SELECT 1"), timeout=timeout, writes=False)
            return True
        except Exception:
            return False
