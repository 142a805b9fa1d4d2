"""Connection pool on asyncpg.

The pool opens every NEW connection through ``_login``, with the current Lakebase token. asyncpg
notices a server-side close only when it next talks: that statement fails and ``pooled.Pooled``
runs the work again. SQL is written with ``%(name)s`` parameters, like the other drivers; ``_bind``
turns it into asyncpg's ``$n``. The example feature's queries (items/queries.py) are ``Query`` values
instead, already in ``$n``: sent as written, and a read of one that calls ``items_for``, or a write of one that
calls a function of migration 0005 (``write_key`` among its names), costs one round trip.
"""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, NamedTuple

import asyncpg

from .credentials import PasswordSource, login_async, login_refused
from .pooled import SET_USER, USER, WRITE_KEY, ConnectionLost, DatabaseBusy, Params, Pooled, Row, refuse_carried
from .settings import Settings, asyncpg_ssl, session_settings


class Query(NamedTuple):
    """A statement in asyncpg's own ``$n`` parameters, and the names of the values they stand for, in order: the
    same dictionaries as the other drivers' ``%(name)s`` SQL, with no rewrite of the SQL. Where ``app_user`` is
    among the names, it is the call's ``user=``, and the statement sets the user itself (``items_for``, 0004)."""

    sql: str
    names: tuple[str, ...]


# What a connection that died (or a server that is away) raises; InternalClientError is a
# connection left mid-protocol by a server-side termination.
_LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)

# Quoted text and comments are passed through untouched; outside them %(name)s is a parameter
# and %% a percent sign, as in psycopg. Any other % there is a mistake.
_SQL = re.compile(
    r"""(?P<keep>[eE]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|"(?:[^"]|"")*"
        |\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$|--[^\n]*|/\*.*?\*/)
      |%\((?P<name>\w+)\)s|(?P<percent>%%)|(?P<stray>%)""",
    re.VERBOSE | re.DOTALL,
)


@lru_cache(maxsize=256)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group("keep"):
            return match.group("keep")
        if match.group("percent"):
            return "%"
        name = match.group("name")
        if name is None:
            raise ValueError(f"stray % at {match.start()} in SQL: write %% for a percent sign, %(name)s for a value")
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _SQL.sub(replace, sql), tuple(names)


def _bind(sql: Query | str, params: Params | None, user: str | None = None) -> tuple[str, list[Any]]:
    """asyncpg's query and positional arguments for a Query, or ``%(name)s`` SQL, and its parameters."""
    if isinstance(sql, Query):
        given = params or {}
        refuse_carried(given, USER)
        values = {**given, USER: user or ""}  # '' for no user: it matches no row
        missing = [name for name in sql.names if name not in values]
        if missing:
            raise ValueError(f"SQL parameters missing from params: {', '.join(missing)}")
        return sql.sql, [values[name] for name in sql.names]
    if params is None:
        return sql, []  # no parameters: the SQL is sent as written, like psycopg does
    query, names = _numbered(sql)
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(f"SQL parameters missing from params: {', '.join(missing)}")
    return query, [params[name] for name in names]


def connect_args(s: Settings, *, migration: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``asyncpg.connect`` to the app's database, for the pool (``create_pool`` hands its
    ``**connect_kwargs`` to ``connect``) and for migrations (migrate.py); the password is added per login."""
    return {
        "host": s.host,
        "port": s.port,
        "database": s.database,
        "user": s.user,
        "ssl": asyncpg_ssl(s),
        "timeout": s.connect_timeout,
        # the app's schema first on the search_path, and the query and lock timeouts
        "server_settings": {**session_settings(s, migration=migration), "application_name": s.application_name},
    }


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's RESET ALL round trip on every release (it still rolls back an open transaction):
    this app keeps no session state (no SET, LISTEN or session advisory locks) to reset."""


class Database(Pooled[asyncpg.Connection]):
    def __init__(self, settings: Settings, passwords: PasswordSource) -> None:
        super().__init__(settings.connect_timeout)
        self._settings = settings
        self._passwords = passwords
        self._pool: asyncpg.Pool | None = None
        # One turn per pooled connection, first come first served. asyncpg's pool hands connections out through
        # an asyncio.Queue, where a request that just arrived can take the connection a waiting one was woken for;
        # the waiter goes back to the end of the line, and under load those waits make the reads' p99 latency.
        # An asyncio.Semaphore wakes its waiters in order and lets no newcomer past them.
        self._turns = asyncio.Semaphore(settings.pool_max_size)

    async def open(self) -> None:
        s = self._settings
        self._pool = await asyncpg.create_pool(
            **connect_args(s),
            connect=self._login,
            min_size=s.pool_min_size,
            max_size=s.pool_max_size,
            max_inactive_connection_lifetime=s.pool_max_lifetime,
            reset=_keep_session,
        )

    async def _login(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        return await login_async(lambda password: asyncpg.connect(*args, **kwargs, password=password), self._passwords)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @asynccontextmanager
    async def _borrow(self, timeout: float, transaction: bool) -> AsyncIterator[asyncpg.Connection]:
        conn = await self._take(timeout)
        try:
            if transaction:
                try:
                    await conn.execute("BEGIN")
                except _LOST as error:
                    raise ConnectionLost from error  # died before anything was sent: run the work again
            yield conn
        except BaseException:
            if transaction:  # a dead connection may already be back in the pool: then even is_closed() raises
                with contextlib.suppress(*_LOST):
                    if not conn.is_closed() and conn.is_in_transaction():
                        await conn.execute("ROLLBACK")
            raise
        finally:
            await self._give_back(conn)

    async def _take(self, timeout: float) -> asyncpg.Connection:
        """A turn, then a pooled connection, both within one wait of ``timeout`` seconds."""
        pool = self._open_pool()
        try:
            async with asyncio.timeout(timeout):
                await self._turns.acquire()
                try:
                    return await pool.acquire()
                except BaseException:  # no connection (timed out, cancelled, unreachable): no turn either
                    self._turns.release()
                    raise
        except TimeoutError as error:  # every connection busy for the whole wait (first: _LOST holds OSError, its base)
            raise DatabaseBusy("no database connection became free in time") from error
        except _LOST as error:
            if login_refused(error):
                raise
            raise ConnectionLost from error  # the server is unreachable: try again until the deadline

    async def _give_back(self, conn: asyncpg.Connection) -> None:
        try:
            with contextlib.suppress(*_LOST):  # the pool drops a dead connection and opens a fresh one
                await self._open_pool().release(conn)
        finally:
            self._turns.release()

    def _open_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.open() was not awaited")
        return self._pool

    def _lost(self, error: BaseException, conn: asyncpg.Connection) -> bool:
        # statement_timeout's cancel is an OperatorInterventionError too, but the connection lives on
        return isinstance(error, _LOST) and not isinstance(error, asyncpg.QueryCanceledError)

    async def _rows(
        self, conn: asyncpg.Connection, sql: Query | str, params: Params | None, user: str | None = None
    ) -> list[Row]:
        query, args = _bind(sql, params, user)
        return [dict(record) for record in await conn.fetch(query, *args)]

    async def _rows_as(self, conn: asyncpg.Connection, user: str, sql: Query | str, params: Params | None) -> list[Row]:
        if isinstance(sql, Query) and USER in sql.names:
            # items_for(user) sets the user and reads in one statement (migration 0004): one round trip
            return await self._call_as(conn, user, sql, params or {})
        # Any other read: asyncpg has no pipeline, and sends a statement with parameters alone, so the setting
        # needs a transaction around the read (BEGIN, SET_USER, the read, COMMIT: three round trips more).
        async with conn.transaction():
            await self._rows(conn, SET_USER, {"app_user": user})
            return await self._rows(conn, sql, params)

    async def _count(self, conn: asyncpg.Connection, sql: Query | str, params: Params | None) -> int:
        query, args = _bind(sql, params)
        tag = await conn.execute(query, *args)  # a command tag such as "DELETE 1"
        return int(tag.rsplit(" ", 1)[-1]) if tag[-1:].isdigit() else 0

    async def _call_as(self, conn: asyncpg.Connection, user: str, sql: Query | str, params: Params) -> list[Row]:
        if isinstance(sql, Query):
            return await self._rows(conn, sql, params, user)  # _bind gives app_user the call's user
        return await super()._call_as(conn, user, sql, params)

    def _applied_once(self, sql: Query | str) -> bool:
        return WRITE_KEY in sql.names if isinstance(sql, Query) else super()._applied_once(sql)

    # Any other write: BEGIN, the transaction's id, the work and COMMIT, four round trips. asyncpg sends one statement
    # per round trip (no pipeline); BEGIN cannot share a statement with parameters (a prepared statement holds one
    # command), and the id must be here before COMMIT is sent (pooled.py), so the default ``_begin`` stays.

    async def _commit(self, conn: asyncpg.Connection) -> None:
        await conn.execute("COMMIT")
