"""Connection pool on asyncpg.

The pool opens every NEW connection through ``_login``, with the current
Lakebase token. A connection is pinged before use
because asyncpg only notices a server-side close when it next talks.
"""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from .credentials import PasswordSource, login_async
from .settings import SCHEMA, Settings

Params = dict[str, Any]
_LOST = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError)


@lru_cache(maxsize=256)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """Turn ``%(name)s`` parameters (the style the other drivers use) into asyncpg's ``$n``."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", number, sql), tuple(names)


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

    @asynccontextmanager
    async def _connection(self, timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise RuntimeError("Database.open() was not awaited")
        wait = self._settings.connect_timeout if timeout is None else timeout
        for _ in range(self._settings.pool_max_size + 1):
            conn = await self._pool.acquire(timeout=wait)
            try:
                await conn.execute("SELECT 1")
            except _LOST:
                conn.terminate()  # the pool opens a fresh one in its place
                await self._pool.release(conn)
                continue
            try:
                yield conn
            finally:
                await self._pool.release(conn)
            return
        raise ConnectionError("no live database connection could be had")

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        query, names = _numbered(sql)
        async with self._connection() as conn:
            return [dict(row) for row in await conn.fetch(query, *[(params or {})[n] for n in names])]

    async def fetch_one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        query, names = _numbered(sql)
        async with self._connection() as conn:
            row = await conn.fetchrow(query, *[(params or {})[n] for n in names])
            return dict(row) if row is not None else None

    async def execute(self, sql: str, params: Params | None = None) -> int:
        query, names = _numbered(sql)
        async with self._connection() as conn:
            status = await conn.execute(query, *[(params or {})[n] for n in names])
            return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0

    async def execute_script(self, statements: list[str]) -> None:
        """Run statements in one transaction."""
        async with self._connection() as conn, conn.transaction():
            for statement in statements:
                await conn.execute(statement)

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            async with self._connection(timeout=timeout) as conn:
                await conn.fetchval("SELECT 1")
            return True
        except Exception:
            return False
