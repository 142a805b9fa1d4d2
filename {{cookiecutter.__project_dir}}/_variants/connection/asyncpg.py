"""Connection pool on asyncpg.

The pool opens every NEW connection through ``_login``, with the current
Lakebase token. Work whose connection died before COMMIT (asyncpg notices a
server-side close only when it next talks) runs again on a fresh connection.
"""

import contextlib
import re
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg

from .credentials import PasswordSource, login_async, login_refused
from .retry import CURRENT_TRANSACTION, TRANSACTION_STATUS, ConnectionLost, commit_outcome, run_again_if_lost, settle
from .settings import SCHEMA, Settings

Params = dict[str, Any]
T = TypeVar("T")
# What a connection that died (or a server that is away) raises; InternalClientError is a
# connection left mid-protocol by a server-side termination.
_LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)


@lru_cache(maxsize=256)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """Turn ``%(name)s`` parameters (the style the other drivers use) into asyncpg's ``$n``."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", number, sql), tuple(names)


def _bind(sql: str, params: Params | None) -> tuple[str, list[Any]]:
    """asyncpg's query and positional arguments for ``%(name)s`` SQL and its parameters."""
    query, names = _numbered(sql)
    return query, [(params or {})[name] for name in names]


class Database:
    def __init__(self, settings: Settings, passwords: PasswordSource) -> None:
        self._settings = settings
        self._passwords = passwords
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        s = self._settings
        self._pool = await asyncpg.create_pool(
            host=s.host,
            port=s.port,
            database=s.database,
            user=s.user,
            connect=self._login,
            ssl=None if s.sslmode == "disable" else s.sslmode,
            min_size=s.pool_min_size,
            max_size=s.pool_max_size,
            max_inactive_connection_lifetime=s.pool_max_lifetime,
            timeout=s.connect_timeout,
            server_settings={"search_path": SCHEMA, "application_name": s.application_name},
        )

    async def _login(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        return await login_async(lambda password: asyncpg.connect(*args, **kwargs, password=password), self._passwords)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def _run(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], timeout: float | None = None, writes: bool = True
    ) -> T:
        """``work`` on a pooled connection; in a transaction committed when it returns, if it ``writes``."""
        if self._pool is None:
            raise RuntimeError("Database.open() was not awaited")
        pool = self._pool
        wait = self._settings.connect_timeout if timeout is None else timeout

        async def attempt() -> T:
            try:
                conn = await pool.acquire(timeout=wait)
            except _LOST as error:
                if login_refused(error):
                    raise
                raise ConnectionLost from error  # the server is unreachable: try again until the deadline
            transaction = conn.transaction() if writes else None
            xid, committing = None, False
            try:
                if transaction is not None:
                    await transaction.start()
                    xid = await conn.fetchval(CURRENT_TRANSACTION)
                result = await work(conn)
                if transaction is not None:
                    committing = True
                    await transaction.commit()
                return result
            except _LOST as error:
                # The pool drops the dead connection on release and opens a fresh one in its place.
                await settle(error, xid, committing, self._commit_outcome)
                return result  # it committed before the connection died
            except BaseException:
                if transaction is not None and not committing and not conn.is_closed():
                    with contextlib.suppress(*_LOST):
                        await transaction.rollback()
                raise
            finally:
                with contextlib.suppress(*_LOST):
                    await pool.release(conn)

        return await run_again_if_lost(attempt, within=wait)

    async def _commit_outcome(self, xid: str) -> bool | None:
        query, args = _bind(TRANSACTION_STATUS, {"xid": xid})
        return await commit_outcome(lambda: self._run(lambda conn: conn.fetchval(query, *args), writes=False))

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        query, args = _bind(sql, params)
        return await self._run(lambda conn: _rows(conn.fetch(query, *args)), writes=False)

    async def fetch_one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        query, args = _bind(sql, params)
        return await self._run(lambda conn: _row(conn.fetchrow(query, *args)))

    async def execute(self, sql: str, params: Params | None = None) -> int:
        query, args = _bind(sql, params)
        return await self._run(lambda conn: _count(conn.execute(query, *args)))

    async def execute_script(self, statements: list[str]) -> None:
        """Run statements in one transaction."""

        async def run_all(conn: asyncpg.Connection) -> None:
            for statement in statements:
                await conn.execute(statement)

        await self._run(run_all)

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            await self._run(lambda conn: conn.fetchval("SELECT 1"), timeout=timeout, writes=False)
            return True
        except Exception:
            return False


async def _rows(records: Awaitable[list[asyncpg.Record]]) -> list[dict[str, Any]]:
    return [dict(record) for record in await records]


async def _row(record: Awaitable[asyncpg.Record | None]) -> dict[str, Any] | None:
    row = await record
    return dict(row) if row is not None else None


async def _count(status: Awaitable[str]) -> int:
    """Rows affected, from a command tag such as ``DELETE 1``."""
    tag = await status
    return int(tag.rsplit(" ", 1)[-1]) if tag[-1:].isdigit() else 0
