{%- set is_async = cookiecutter.__is_async == "True" -%}
{%- set async_ = "async " if is_async else "" -%}
{%- set await_ = "await " if is_async else "" -%}
"""What every driver shares: run work on a pooled connection, again on a fresh one if the connection died.

A backend can vanish under a statement (terminated, server restart, scale to zero). No connection
is checked before use: the first statement on a dead one fails, and the work runs again.

- Every call is made for one user, or for none (``user=None``: health checks, the version table).
  PostgreSQL's row-level security (migration 0002) shows a transaction only the rows of the user in
  ``app.user``, set with ``set_config(..., true)``: local to the transaction, so nothing of one call
  is left on the pooled connection for the next, and it works through a transaction-mode pooler
  (PostgreSQL docs: functions-admin, sql-set; PgBouncer docs: features). No user, no rows.
- Reads run in the implicit transaction of one statement (autocommit). A read for a user sends the
  setting and the statement in the same round trip where the driver can (``_rows_as``). Running a
  read twice is harmless, so a lost connection only means "run it again".
- A write whose statement names ``write_key`` (the example feature's: a function of migration 0005) is
  that one statement in autocommit, one round trip: the function sets the user, records the write's key and
  applies it, once. The key is drawn once per call and sent on every try, so a try sent again after a lost
  answer finds it and changes nothing; it answers with what the write left (``_once``).
- Any other write runs in one transaction that first reads its own id (``pg_current_xact_id()``), setting the
  user in that same statement: no extra round trip. BEGIN, that statement and the work go together where the
  driver can (``_begin``); COMMIT only once the id is here. If COMMIT gets no answer, the server is asked
  what became of that transaction (``pg_xact_status``): committed work is not done twice, work
  that did not commit runs again, and when nobody can tell the caller gets the error.

``connection.py`` subclasses ``Pooled`` with what differs per driver: how to borrow a connection,
run SQL, commit, and what a lost connection looks like.
"""

{% if is_async -%}
import asyncio
{% endif -%}
import time
import uuid
from collections.abc import {{ "Awaitable, " if is_async }}Callable
from contextlib import {{ "AbstractAsyncContextManager as Borrowed" if is_async else "AbstractContextManager as Borrowed" }}
from typing import Any, Generic, TypeVar, cast

C = TypeVar("C")  # the driver's connection
T = TypeVar("T")
Params = dict[str, Any]
Row = dict[str, Any]
Sql = Any  # SQL text with %(name)s parameters, or the driver's own statement (asyncpg's Query, SQLAlchemy Core)
Statements = list[tuple[Sql, Params | None]]
Done = list[Row] | int  # a write's last statement: its rows, or how many rows it changed
{%- if is_async %}
Work = Callable[[C], Awaitable[T]]
{%- else %}
Work = Callable[[C], T]
{%- endif %}

# The transaction's id, and the user it is opened for ('' for none, which matches no row).
CURRENT_TRANSACTION = "SELECT pg_current_xact_id()::text AS xid, set_config('app.user', %(app_user)s, true) AS app_user"
SET_USER = "SELECT set_config('app.user', %(app_user)s, true)"  # until the end of the transaction
USER = "app_user"  # the parameter that carries the call's user= into a statement that sets it itself (0004, 0005)
WRITE_KEY = "write_key"  # the parameter that carries a write's key: the statement applies the write once (0005)
TRANSACTION_STATUS = "SELECT pg_xact_status(%(xid)s::text::xid8) AS status"


class ConnectionLost(Exception):
    """The connection died (or the server is away) before the work could commit: run it again."""


class DatabaseBusy(Exception):
    """No connection became free within the wait, or a query ran past statement_timeout or lock_timeout: the
    request is answered 503 with Retry-After (the client may simply try again), not 500."""

    retry_after = 2  # seconds: a burst of millisecond queries has long drained by then


class DatabaseUnavailable(DatabaseBusy):
    """The database cannot be used now (unreachable, a refused login or certificate, a failed migration); the
    message says what to do (unavailable.py). Answered 503 with that line and Retry-After, never a traceback."""

    retry_after = 5  # seconds: a compute waking up or a redeploy; a wrong setting stays until it is fixed


# query_canceled (what statement_timeout raises) and lock_not_available (lock_timeout)
_TIMED_OUT = {"57014", "55P03"}


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver's error (psycopg: sqlstate, psycopg2: pgcode), also under SQLAlchemy's wrapping."""
    for candidate in (error, getattr(error, "orig", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return None


def session_ended(error: BaseException | None) -> bool:
    """The server ended the session (57P: admin or crash shutdown; 08: connection exception), also where the
    driver reports it under a later error: psycopg's pipeline raises "cannot exit pipeline mode while busy"
    over the AdminShutdown it received, before it marks the connection broken (a PostgreSQL restart under load)."""
    while error is not None:
        if (_sqlstate(error) or "").startswith(("57P", "08")):
            return True
        error = error.__context__
    return False


def refuse_carried(params: Params | None, *names: str) -> None:
    """ValueError when ``params`` holds one of ``names``: a parameter the app fills in itself (USER, WRITE_KEY)."""
    taken = sorted(set(names) & set(params or {}))
    if taken:
        raise ValueError(f"{', '.join(taken)}: a parameter the app fills in itself: name yours differently")


def _backoff(attempt: int) -> float:
    return 0.0 if attempt == 0 else min(0.05 * 2**attempt, 1.0)  # the first retry is immediate


class Pooled(Generic[C]):
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout  # seconds to wait for a connection, and to keep retrying

    # ------------------------------------------------------------------ what each driver provides
    def _borrow(self, timeout: float, transaction: bool) -> Borrowed[C]:
        """A pooled connection: autocommit unless ``transaction``; rolled back and
        returned to the pool on exit. Raises ConnectionLost when the server cannot be reached."""
        raise NotImplementedError

    def _lost(self, error: BaseException, conn: C) -> bool:
        """Whether ``error`` means the connection is gone."""
        raise NotImplementedError

    {{ async_ }}def _rows(self, conn: C, sql: Sql, params: Params | None) -> list[Row]:
        raise NotImplementedError

    {{ async_ }}def _rows_as(self, conn: C, user: str, sql: Sql, params: Params | None) -> list[Row]:
        """A read on an autocommit connection, in one transaction with ``SET_USER`` before it."""
        raise NotImplementedError

    {{ async_ }}def _call_as(self, conn: C, user: str, sql: Sql, params: Params) -> list[Row]:
        """One statement that sets the user itself, on an autocommit connection: ``user`` is its ``app_user``."""
        return {{ await_ }}self._rows(conn, sql, {**params, USER: user})

    def _applied_once(self, sql: Sql) -> bool:
        """Whether ``sql`` names ``write_key``: a statement that applies a write once by its key (``_once``)."""
        return isinstance(sql, str) and f"%({WRITE_KEY})s" in sql

    {{ async_ }}def _count(self, conn: C, sql: Sql, params: Params | None) -> int:
        """Run a statement; the number of rows it affected."""
        raise NotImplementedError

    {{ async_ }}def _commit(self, conn: C) -> None:
        raise NotImplementedError

    {{ async_ }}def _begin(self, conn: C, user: str | None, statements: Statements, returning: bool) -> tuple[str, Done]:
        """In the write's transaction (``_borrow`` opened it): its id, read while setting the user, then the
        statements in order; the id, and the last statement's rows (``returning``) or row count. Here one
        statement after the other; a driver that can send them together overrides it (fewer round trips)."""
        xid = ({{ await_ }}self._rows(conn, CURRENT_TRANSACTION, {"app_user": user or ""}))[0]["xid"]
        return xid, {{ await_ }}self._run(conn, statements, returning)

    {{ async_ }}def _run(self, conn: C, statements: Statements, returning: bool) -> Done:
        """The statements one after the other: the last one's rows (``returning``) or row count."""
        done: Done = 0
        for index, (sql, params) in enumerate(statements):
            if returning and index == len(statements) - 1:
                done = {{ await_ }}self._rows(conn, sql, params)
            else:
                done = {{ await_ }}self._count(conn, sql, params)
        return done

    # ------------------------------------------------------------------ shared
    {{ async_ }}def _again_if_lost(self, attempt: Callable[[], {{ "Awaitable[T]" if is_async else "T" }}], within: float) -> T:
        deadline = time.monotonic() + within
        tries = 0
        while True:
            try:
                return {{ await_ }}attempt()
            except ConnectionLost as lost:
                if time.monotonic() + _backoff(tries) > deadline:  # 503, with what to do about it
                    from .unavailable import unavailable  # here: it imports this module

                    raise unavailable(lost.__cause__ or lost) from lost.__cause__
                {{ "await asyncio.sleep" if is_async else "time.sleep" }}(_backoff(tries))
                tries += 1
            except Exception as error:
                if _sqlstate(error) in _TIMED_OUT:  # rolled back by the server: safe to try again later
                    raise DatabaseBusy(f"a query ran past its time limit (SQLSTATE {_sqlstate(error)})") from error
                raise

    {{ async_ }}def _read(self, work: Work[C, T], timeout: float | None = None) -> T:
        wait = self._timeout if timeout is None else timeout

        {{ async_ }}def attempt() -> T:
            {{ async_ }}with self._borrow(wait, transaction=False) as conn:
                try:
                    return {{ await_ }}work(conn)
                except Exception as error:
                    if self._lost(error, conn):
                        raise ConnectionLost from error
                    raise

        return {{ await_ }}self._again_if_lost(attempt, wait)

    {{ async_ }}def _write(self, statements: Statements, user: str | None, returning: bool = False) -> Done:
        {{ async_ }}def attempt() -> Done:
            {{ async_ }}with self._borrow(self._timeout, transaction=True) as conn:
                xid, committing = None, False
                try:
                    xid, result = {{ await_ }}self._begin(conn, user, statements, returning)
                    committing = True
                    {{ await_ }}self._commit(conn)
                    return result
                except Exception as error:
                    if not self._lost(error, conn):
                        raise
                    if committing and xid is not None and {{ await_ }}self._committed(xid, error):
                        return result  # it committed before the connection died
                    raise ConnectionLost from error

        return {{ await_ }}self._again_if_lost(attempt, self._timeout)

    {{ async_ }}def _once(self, sql: Sql, params: Params | None, user: str | None) -> list[Row]:
        """A write's one statement, sent again with the same key after a lost connection: the function applies it
        once and answers a retry with what it left (0005). A time-out rolls it back, as any statement's."""
        refuse_carried(params, USER, WRITE_KEY)
        keyed = {**(params or {}), WRITE_KEY: str(uuid.uuid4())}  # one key for every try
        return {{ await_ }}self._read(lambda conn: self._call_as(conn, user or "", sql, keyed))  # '' : no user's rows

    {{ async_ }}def _committed(self, xid: str, error: Exception) -> bool:
        """Whether the transaction whose COMMIT got no answer committed; re-raises ``error`` if nobody can tell."""
        for _ in range(20):
            rows = {{ await_ }}self.fetch_all(TRANSACTION_STATUS, {"xid": xid})
            if rows[0]["status"] != "in progress":
                return rows[0]["status"] == "committed"
            {{ "await asyncio.sleep" if is_async else "time.sleep" }}(0.1)  # its backend is still going away
        raise error

    # ------------------------------------------------------------------ the API the app uses
    # ``user``: the signed-in user the work is for (identity.py decides who); None sees no user's rows.
    {{ async_ }}def fetch_all(self, sql: Sql, params: Params | None = None, *, user: str | None = None) -> list[Row]:
        """Rows of a read. Reads may run twice (after a lost connection): never write with them."""
        if user is None:
            return {{ await_ }}self._read(lambda conn: self._rows(conn, sql, params))
        return {{ await_ }}self._read(lambda conn: self._rows_as(conn, user, sql, params))

    {{ async_ }}def fetch_one(self, sql: Sql, params: Params | None = None, *, user: str | None = None) -> Row | None:
        """The first row of a read, or None."""
        rows = {{ await_ }}self.fetch_all(sql, params, user=user)
        return rows[0] if rows else None

    {{ async_ }}def write_one(self, sql: Sql, params: Params | None = None, *, user: str | None = None) -> Row | None:
        """A write that returns a row (INSERT/UPDATE ... RETURNING, or a function's row), committed exactly once."""
        if self._applied_once(sql):
            rows = {{ await_ }}self._once(sql, params, user)
            return rows[0] if rows else None
        rows = cast(list[Row], {{ await_ }}self._write([(sql, params)], user, returning=True))  # returning: rows
        return rows[0] if rows else None

    {{ async_ }}def execute(self, sql: Sql, params: Params | None = None, *, user: str | None = None) -> int:
        """A write, committed exactly once; the number of rows it affected (a function's: its ``changed``)."""
        if self._applied_once(sql):
            return int(({{ await_ }}self._once(sql, params, user))[0]["changed"])
        return cast(int, {{ await_ }}self._write([(sql, params)], user))  # not returning: a row count

    {{ async_ }}def execute_script(self, statements: list[str]) -> None:
        """Statements in one transaction."""
        {{ await_ }}self._write([(statement, None) for statement in statements], None)

    {{ async_ }}def ping(self, timeout: float = 2.0) -> bool:
        try:
            {{ await_ }}self._read(lambda conn: self._rows(conn, "SELECT 1 AS ok", None), timeout=timeout)
            return True
        except Exception:
            return False
