{%- set is_async = cookiecutter.__is_async == "True" -%}
"""Run a unit of database work again when its connection died before anything was committed.

A backend can vanish under a statement (terminated, server restart, scale to zero). When
that happens before COMMIT was sent, nothing was written, so the work runs again on a
fresh connection; a failure during COMMIT itself is ambiguous and is not retried.
"""

{% if is_async -%}
import asyncio
{% endif -%}
import time
from collections.abc import {{ "Awaitable, " if is_async }}Callable
from typing import TypeVar

T = TypeVar("T")


class ConnectionLost(Exception):
    """Raised from inside a unit of work whose connection died before it committed."""


def _backoff(attempt: int) -> float:
    return 0.0 if attempt == 0 else min(0.05 * 2**attempt, 1.0)  # the first retry is immediate


{% if is_async -%}
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
