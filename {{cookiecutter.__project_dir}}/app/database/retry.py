{%- set is_async = cookiecutter.__is_async == "True" -%}
"""Run a unit of database work again when its connection died before anything was committed.

A backend can vanish under a statement (terminated, server restart, scale to zero). When
that happens before COMMIT was sent, nothing was written, so the work runs again on a
fresh connection. When COMMIT got no answer, the server is asked what became of the
transaction (``pg_xact_status``): committed work is not done twice.
"""

{% if is_async -%}
import asyncio
{% endif -%}
import time
from collections.abc import {{ "Awaitable, " if is_async }}Callable
from typing import TypeVar

T = TypeVar("T")

CURRENT_TRANSACTION = "SELECT pg_current_xact_id()::text AS xid"
TRANSACTION_STATUS = "SELECT pg_xact_status(%(xid)s::text::xid8) AS status"


class ConnectionLost(Exception):
    """Raised from inside a unit of work whose connection died before it committed."""


def _backoff(attempt: int) -> float:
    return 0.0 if attempt == 0 else min(0.05 * 2**attempt, 1.0)  # the first retry is immediate


{% if is_async -%}
async def settle(
    error: BaseException, xid: str | None, committing: bool, outcome: Callable[[str], Awaitable[bool | None]]
) -> None:
    """After the connection died under a unit of work: return if the work committed all the same, raise
    ConnectionLost if nothing was written (run it again), or re-raise ``error`` if nobody can tell."""
    if committing and xid is not None:  # COMMIT went out: did it land?
        committed = await outcome(xid)
        if committed:
            return
        if committed is None:
            raise error
    raise ConnectionLost from error


async def commit_outcome(read_status: Callable[[], Awaitable[str | None]]) -> bool | None:
    """Whether a transaction whose COMMIT got no answer committed; None if the server cannot say yet."""
    for _ in range(20):
        status = await read_status()
        if status != "in progress":
            return status == "committed"
        await asyncio.sleep(0.1)  # its backend is still going away
    return None


async def run_again_if_lost(work: Callable[[], Awaitable[T]], within: float) -> T:
    deadline = time.monotonic() + within
    attempt = 0
    while True:
        try:
            return await work()
        except ConnectionLost as lost:
            if time.monotonic() + _backoff(attempt) > deadline:
                raise lost.__cause__ or lost from None
            await asyncio.sleep(_backoff(attempt))
            attempt += 1
{%- else -%}
def settle(error: BaseException, xid: str | None, committing: bool, outcome: Callable[[str], bool | None]) -> None:
    """After the connection died under a unit of work: return if the work committed all the same, raise
    ConnectionLost if nothing was written (run it again), or re-raise ``error`` if nobody can tell."""
    if committing and xid is not None:  # COMMIT went out: did it land?
        committed = outcome(xid)
        if committed:
            return
        if committed is None:
            raise error
    raise ConnectionLost from error


def commit_outcome(read_status: Callable[[], str | None]) -> bool | None:
    """Whether a transaction whose COMMIT got no answer committed; None if the server cannot say yet."""
    for _ in range(20):
        status = read_status()
        if status != "in progress":
            return status == "committed"
        time.sleep(0.1)  # its backend is still going away
    return None


def run_again_if_lost(work: Callable[[], T], within: float) -> T:
    deadline = time.monotonic() + within
    attempt = 0
    while True:
        try:
            return work()
        except ConnectionLost as lost:
            if time.monotonic() + _backoff(attempt) > deadline:
                raise lost.__cause__ or lost from None
            time.sleep(_backoff(attempt))
            attempt += 1
{%- endif %}
