"""retry(): run an async operation until it succeeds, waiting with jittered exponential backoff (tenacity).

One retry loop for every component that waits out a failing dependency (the event logger, the alert
engine, the outcome recorder, the dispatcher's claims): the same backoff, the same hooks, and
`is_transient(exc)`, the one answer to "is the database unavailable, or does it refuse these rows?".
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import (
    DatabaseError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

T = TypeVar("T")

# "The database is not there (or has no table yet)": keep the rows and retry. Anything else is about
# the rows themselves (too long, wrong type) and retrying them as they are would block every later one.
_TRANSIENT = (
    OperationalError,
    InterfaceError,
    ProgrammingError,
    DisconnectionError,
    OSError,
    TimeoutError,
    ConnectionError,
)


def is_transient(exc: BaseException) -> bool:
    """True when the database is unavailable (retry the same rows later), False when it refuses them."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if type(exc) is DatabaseError:  # "file is not a database", "disk image is malformed": the file is at
        return True  # fault, not the rows; keep them (buffer, spill) until it is repaired
    return isinstance(exc, _TRANSIENT)


def any_error(exc: BaseException) -> bool:
    """Retry on every Exception (never on cancellation)."""
    return isinstance(exc, Exception)


def backoff_delay(attempt: int, initial: float, cap: float, jitter: float = 0.0) -> float:
    """Wait after failed attempt number `attempt` (1-based): initial * 2**(attempt-1), capped, plus up to
    `jitter` of itself at random (the same curve as kit.backoff.Backoff)."""
    delay = min(cap, initial * 2 ** max(0, attempt - 1))
    return delay + delay * jitter * random.random() if jitter else delay


async def retry(
    op: Callable[[], Awaitable[T]],
    *,
    retry_on: Callable[[BaseException], bool] = is_transient,
    initial: float = 0.5,
    cap: float = 10.0,
    jitter: float = 0.0,
    delay: Callable[[int], float] | None = None,
    on_error: Callable[[BaseException, int], Awaitable[None] | None] | None = None,
    stop_when: Callable[[], bool] | None = None,
    deadline_s: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`await op()` until it returns; an exception `retry_on` refuses is raised at once.

    `on_error(exc, attempt)` runs after every retried failure (sync or async). The last failure is
    raised when `stop_when()` turns true or the next wait would pass `deadline_s` (from the first try);
    without either, a retried failure is retried forever. `delay(attempt)` replaces the backoff curve
    (a Link's backoff, reset when a connection comes up); `sleep` waits between attempts (a sleep that
    returns early on a wake-up is fine)."""
    started = time.monotonic()

    def stop(state: RetryCallState) -> bool:
        if stop_when is not None and stop_when():
            return True
        if deadline_s is None:
            return False
        # the wait was computed just before (tenacity runs `wait`, then `stop`)
        return time.monotonic() - started + state.upcoming_sleep > deadline_s

    def wait(state: RetryCallState) -> float:
        if delay is not None:
            return delay(state.attempt_number)
        return backoff_delay(state.attempt_number, initial, cap, jitter)

    async def after(state: RetryCallState) -> None:
        if on_error is None or state.outcome is None:
            return
        exc = state.outcome.exception()
        if exc is not None:
            result = on_error(exc, state.attempt_number)
            if inspect.isawaitable(result):
                await result

    retrying = AsyncRetrying(
        retry=retry_if_exception(retry_on),
        wait=wait,
        stop=stop,
        after=after,
        sleep=sleep,
        reraise=True,
    )
    # the iterator form: `op` may be any callable returning an awaitable (a lambda, a partial), which
    # `await retrying(op)` would call without awaiting
    async for attempt in retrying:
        with attempt:
            return await op()
    raise AssertionError("unreachable: tenacity returns or raises")
