"""SQLAlchemy engine (psycopg 3 underneath) with a pooled connection per request.

The ``do_connect`` listener logs every NEW connection in with the current
Lakebase token; ``pool_pre_ping`` replaces connections the server closed.
SQL is passed to psycopg as written (``%(name)s`` parameters), like the other drivers.
"""

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from .credentials import PasswordSource, login
from .settings import SCHEMA, Settings

Params = dict[str, Any]


class Database:
    def __init__(self, settings: Settings, passwords: PasswordSource) -> None:
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

    def open(self) -> None:
        with self._engine.connect():
            pass

    def close(self) -> None:
        self._engine.dispose()

    def fetch_all(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        with self._engine.begin() as conn:
            return [dict(row) for row in conn.exec_driver_sql(sql, params).mappings()]

    def fetch_one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        with self._engine.begin() as conn:
            row = conn.exec_driver_sql(sql, params).mappings().first()
            return dict(row) if row is not None else None

    def execute(self, sql: str, params: Params | None = None) -> int:
        with self._engine.begin() as conn:
            return conn.exec_driver_sql(sql, params).rowcount

    def execute_script(self, statements: list[str]) -> None:
        """Run statements in one transaction."""
        with self._engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False
