"""Connection pool on psycopg 3 and psycopg_pool.

Every NEW connection logs in through ``TokenConnection.connect`` with the current Lakebase token;
connections already open are left alone. Retry and commit bookkeeping live in ``pooled.Pooled``.
"""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any, Self

import psycopg
from psycopg import pq
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from .credentials import PasswordSource, login
from .libpq import connect_args
from .pooled import (
    CURRENT_TRANSACTION,
    SET_USER,
    USER,
    DatabaseBusy,
    Done,
    Params,
    Pooled,
    Row,
    Statements,
    session_ended,
)
from .settings import Settings
from .unavailable import unavailable


class TokenConnection(psycopg.Connection):
    """Logs in with the current token of the ``password_source`` the pool passes along."""

    last_failure: Exception | None = None  # why the pool's last login failed (its workers log in in the background)

    @classmethod
    def connect(cls, conninfo: str = "", *, password_source: PasswordSource, **kwargs: Any) -> Self:  # type: ignore[override]
        parent = super().connect
        try:
            conn = login(lambda password: parent(conninfo, password=password, **kwargs), password_source)
        except Exception as error:
            TokenConnection.last_failure = error
            raise
        TokenConnection.last_failure = None
        return conn


class Database(Pooled[psycopg.Connection]):
    def __init__(self, settings: Settings, passwords: PasswordSource) -> None:
        super().__init__(settings.connect_timeout)
        s = settings
        self._pool = ConnectionPool(
            conninfo="",
            connection_class=TokenConnection,
            kwargs={**connect_args(s), "row_factory": dict_row, "password_source": passwords},
            min_size=s.pool_min_size,
            max_size=s.pool_max_size,
            max_lifetime=s.pool_max_lifetime,
            timeout=s.connect_timeout,
            name=s.application_name,
            open=False,
        )  # no check= on checkout: a dead connection fails its first statement and the work runs again

    def open(self) -> None:
        self._pool.open()

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _borrow(self, timeout: float, transaction: bool) -> Iterator[psycopg.Connection]:
        with ExitStack() as stack:
            try:
                conn = stack.enter_context(self._pool.connection(timeout=timeout))
            except PoolTimeout as error:  # every connection busy, or none could be opened: then say why (503)
                if TokenConnection.last_failure is not None:
                    raise unavailable(TokenConnection.last_failure) from error
                raise DatabaseBusy(str(error)) from error
            # Autocommit for writes too (client-side only: no round trip): a write sends its own BEGIN in its
            # pipeline (_begin), where psycopg would send it alone first.
            conn.autocommit = True
            try:
                yield conn
            except BaseException:
                if not conn.closed and conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                    with suppress(psycopg.Error):  # a dead connection: the pool drops it
                        conn.rollback()  # a failed write: undone here, not by the pool (which warns when it must)
                raise

    def _lost(self, error: BaseException, conn: psycopg.Connection) -> bool:
        if not isinstance(error, psycopg.OperationalError) or not (conn.broken or session_ended(error)):
            return False
        conn.close()  # the pool drops a closed connection; psycopg may not have marked this one broken yet
        return True

    def _rows(self, conn: psycopg.Connection, sql: str, params: Params | None) -> list[Row]:
        return conn.execute(sql, params).fetchall()  # type: ignore[return-value]

    def _rows_as(self, conn: psycopg.Connection, user: str, sql: str, params: Params | None) -> list[Row]:
        with conn.pipeline():  # one round trip: both statements, then Sync (one implicit transaction)
            conn.execute(SET_USER, {"app_user": user})
            cursor = conn.execute(sql, params)
        return cursor.fetchall()  # type: ignore[return-value]

    def _call_as(self, conn: psycopg.Connection, user: str, sql: str, params: Params) -> list[Row]:
        # In a pipeline, the Parse of a statement psycopg prepares (its prepare_threshold-th use) goes with the Bind
        # and Execute: one round trip on every use. Outside one, preparing costs a round trip of its own.
        with conn.pipeline():
            cursor = conn.execute(sql, {**params, USER: user})
        return cursor.fetchall()  # type: ignore[return-value]

    def _count(self, conn: psycopg.Connection, sql: str, params: Params | None) -> int:
        return conn.execute(sql, params).rowcount

    def _begin(
        self, conn: psycopg.Connection, user: str | None, statements: Statements, returning: bool
    ) -> tuple[str, Done]:
        # A write without a key (not the example feature's): BEGIN, the transaction's id and the statements in one
        # round trip, sent together, then one Sync. COMMIT goes only once the id is here (pooled.py): two.
        with conn.pipeline():
            conn.execute("BEGIN")
            opened = conn.execute(CURRENT_TRANSACTION, {"app_user": user or ""})
            cursors = [conn.execute(sql, params) for sql, params in statements]
        last = cursors[-1] if cursors else opened
        return opened.fetchone()["xid"], (last.fetchall() if returning else last.rowcount)  # type: ignore[index,return-value]

    def _commit(self, conn: psycopg.Connection) -> None:
        conn.commit()  # COMMIT: psycopg follows the server's transaction status, in autocommit too
