"""SQLAlchemy engine (psycopg 3 underneath) and its QueuePool.

The ``do_connect`` listener logs every NEW connection in with the current Lakebase token. No
pre-ping: a dead connection fails its first statement, SQLAlchemy invalidates it and
``pooled.Pooled`` runs the work again. SQL is passed to psycopg as written (``%(name)s`` parameters);
the example's queries are SQLAlchemy Core statements (queries.py), compiled to such SQL once.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Executable, create_engine, event
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as QueuePoolTimeout

from .credentials import PasswordSource, login, login_refused
from .libpq import connect_args
from .pooled import (
    CURRENT_TRANSACTION,
    SET_USER,
    USER,
    WRITE_KEY,
    ConnectionLost,
    DatabaseBusy,
    Done,
    Params,
    Pooled,
    Row,
    Statements,
    session_ended,
)
from .settings import Settings

_DIALECT = PGDialect_psycopg()


@lru_cache(maxsize=64)
def _compiled(statement: str | Executable) -> str:
    """A Core statement (queries.py) as psycopg SQL with the same ``%(name)s`` parameters, compiled once.

    Compiled without the call's parameters, so an UPDATE sets only the columns its ``values()`` names.
    """
    return statement if isinstance(statement, str) else str(statement.compile(dialect=_DIALECT))


class Database(Pooled[Connection]):
    def __init__(self, settings: Settings, passwords: PasswordSource) -> None:
        super().__init__(settings.connect_timeout)
        self._engine: Engine = create_engine(
            "postgresql+psycopg://",
            pool_size=settings.pool_max_size,
            max_overflow=0,  # the pool size is the hard bound on connections
            pool_timeout=settings.connect_timeout,
            pool_recycle=settings.pool_max_lifetime,
            connect_args=connect_args(settings),
        )

        @event.listens_for(self._engine, "do_connect")
        def _login_with_current_token(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
            return login(lambda password: dialect.connect(*cargs, **cparams, password=password), passwords)

    def open(self) -> None:
        self.fetch_all("SELECT 1 AS ok")  # log in once, so a bad setting fails at start-up

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _borrow(self, timeout: float, transaction: bool) -> Iterator[Connection]:
        try:
            conn = self._engine.connect()
        except QueuePoolTimeout as error:  # every connection busy for pool_timeout
            raise DatabaseBusy(str(error)) from error
        except OperationalError as error:
            if login_refused(error):
                raise
            raise ConnectionLost from error  # the server is unreachable: try again until the deadline
        with conn:  # writes too: they send their own BEGIN, in their pipeline (_begin)
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def _lost(self, error: BaseException, conn: Connection) -> bool:
        if isinstance(error, psycopg.OperationalError):  # from _rows_as, below SQLAlchemy: it must drop it too
            lost = conn.invalidated or conn.connection.driver_connection.broken or session_ended(error)
            if lost and not conn.invalidated:
                conn.invalidate()
            return lost
        return isinstance(error, DBAPIError) and error.connection_invalidated

    def _rows(self, conn: Connection, sql: str | Executable, params: Params | None) -> list[Row]:
        return [dict(row) for row in conn.exec_driver_sql(_compiled(sql), params).mappings()]

    def _rows_as(self, conn: Connection, user: str, sql: str | Executable, params: Params | None) -> list[Row]:
        psycopg_conn = conn.connection.driver_connection  # SQLAlchemy has no pipeline; psycopg has
        with psycopg_conn.pipeline():  # one round trip: both statements, then Sync (one implicit transaction)
            psycopg_conn.execute(SET_USER, {"app_user": user})
            cursor = psycopg_conn.cursor(row_factory=dict_row).execute(_compiled(sql), params)
        return cursor.fetchall()

    def _call_as(self, conn: Connection, user: str, sql: str | Executable, params: Params) -> list[Row]:
        psycopg_conn = conn.connection.driver_connection  # in psycopg's pipeline, as on psycopg 3: one round trip
        with psycopg_conn.pipeline():
            cursor = psycopg_conn.cursor(row_factory=dict_row).execute(_compiled(sql), {**params, USER: user})
        return cursor.fetchall()

    def _applied_once(self, sql: str | Executable) -> bool:
        return f"%({WRITE_KEY})s" in _compiled(sql)

    def _count(self, conn: Connection, sql: str | Executable, params: Params | None) -> int:
        return conn.exec_driver_sql(_compiled(sql), params).rowcount

    def _begin(self, conn: Connection, user: str | None, statements: Statements, returning: bool) -> tuple[str, Done]:
        # A write without a key, as on psycopg 3 (SQLAlchemy has no pipeline, psycopg has): BEGIN, the transaction's
        # id and the statements in one round trip, then COMMIT once the id is here (pooled.py). SQLAlchemy sees an
        # autocommit connection; returned to its pool, it is rolled back if still in a transaction (a failed write).
        psycopg_conn = conn.connection.driver_connection
        with psycopg_conn.pipeline():
            psycopg_conn.execute("BEGIN")
            opened = psycopg_conn.cursor(row_factory=dict_row).execute(CURRENT_TRANSACTION, {"app_user": user or ""})
            cursors = [psycopg_conn.cursor(row_factory=dict_row).execute(_compiled(sql), p) for sql, p in statements]
        last = cursors[-1] if cursors else opened
        return opened.fetchone()["xid"], (last.fetchall() if returning else last.rowcount)  # type: ignore[index]

    def _commit(self, conn: Connection) -> None:
        conn.connection.driver_connection.commit()  # COMMIT, below SQLAlchemy like the BEGIN
