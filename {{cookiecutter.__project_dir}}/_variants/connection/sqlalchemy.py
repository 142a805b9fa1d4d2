"""SQLAlchemy engine (psycopg 3 underneath) with a pooled connection per request.

The ``do_connect`` listener logs every NEW connection in with the current
Lakebase token; ``pool_pre_ping`` replaces connections the server closed.
SQL is passed to psycopg as written (``%(name)s`` parameters), like the other drivers.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from .credentials import PasswordSource, login, login_refused
from .retry import CURRENT_TRANSACTION, TRANSACTION_STATUS, ConnectionLost, commit_outcome, run_again_if_lost, settle
from .settings import SCHEMA, Settings

Params = dict[str, Any]
T = TypeVar("T")


class Database:
    def __init__(self, settings: Settings, passwords: PasswordSource) -> None:
        self._settings = settings
        self._engine: Engine = create_engine(
            "postgresql+psycopg://",
            pool_size=settings.pool_max_size,
            max_overflow=0,  # the pool size is the hard bound on connections
            pool_timeout=settings.connect_timeout,
            pool_recycle=settings.pool_max_lifetime,
            pool_pre_ping=True,
            connect_args={
                "host": settings.host,
                "port": settings.port,
                "dbname": settings.database,
                "user": settings.user,
                "sslmode": settings.sslmode,
                "application_name": settings.application_name,
                "connect_timeout": max(1, round(settings.connect_timeout)),
                "options": f"-c search_path={SCHEMA}",
            },
        )

        @event.listens_for(self._engine, "do_connect")
        def _login_with_current_token(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
            return login(lambda password: dialect.connect(*cargs, **cparams, password=password), passwords)

    def _run(self, work: Callable[[Connection], T], timeout: float | None = None, writes: bool = True) -> T:
        """One transaction on a pooled connection, committed when ``work`` returns; ``writes`` if it may write."""
        wait = self._settings.connect_timeout if timeout is None else timeout

        def attempt() -> T:
            connected = False
            try:
                with self._engine.connect() as conn:
                    connected = True
                    xid, committing = None, False
                    try:
                        if writes:
                            xid = conn.exec_driver_sql(CURRENT_TRANSACTION).scalar()
                        result = work(conn)
                        committing = True
                        conn.commit()
                        return result
                    except DBAPIError as error:
                        if not error.connection_invalidated:
                            raise
                        settle(error, xid, committing, self._commit_outcome)
                        return result  # it committed before the connection died
            except OperationalError as error:
                if connected or login_refused(error):
                    raise
                raise ConnectionLost from error  # the server is unreachable: try again until the deadline

        return run_again_if_lost(attempt, within=wait)

    def _commit_outcome(self, xid: str) -> bool | None:
        def status(conn: Connection) -> str | None:
            return conn.exec_driver_sql(TRANSACTION_STATUS, {"xid": xid}).scalar()

        return commit_outcome(lambda: self._run(status, writes=False))

    def open(self) -> None:
        self._run(lambda conn: None)  # log in once, so a bad setting fails at start-up

    def close(self) -> None:
        self._engine.dispose()

    def fetch_all(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        return self._run(lambda conn: [dict(row) for row in conn.exec_driver_sql(sql, params).mappings()], writes=False)

    def fetch_one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        def fetch(conn: Connection) -> dict[str, Any] | None:
            row = conn.exec_driver_sql(sql, params).mappings().first()
            return dict(row) if row is not None else None

        return self._run(fetch)

    def execute(self, sql: str, params: Params | None = None) -> int:
        return self._run(lambda conn: conn.exec_driver_sql(sql, params).rowcount)

    def execute_script(self, statements: list[str]) -> None:
        """Run statements in one transaction."""

        def run_all(conn: Connection) -> None:
            for statement in statements:
                conn.exec_driver_sql(statement)

        self._run(run_all)

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            self._run(lambda conn: conn.exec_driver_sql("SELECT 1"), timeout=timeout, writes=False)
            return True
        except Exception:
            return False
