"""Wait on a condition with a deadline (tests never sleep to synchronise): the one polling loop of the suite.

    row = await eventually(stored, timeout=10)                    # async code: `check` sync or async
    wait_until(lambda: server.started, timeout=30, what="start")  # sync code, threads, fixtures

Both poll `check` until it returns something truthy and return that; at the deadline they raise
AssertionError naming `what` (a string, or a callable giving one, evaluated only on failure). Exceptions
of the types in `ignore` count as "not yet" (a server still starting refuses connections).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
Message = str | Callable[[], str]


def _failure(what: Message, timeout: float) -> AssertionError:
    text = what() if callable(what) else what
    return AssertionError(f"{text} not met within {timeout} s")


async def eventually(
    check: Callable[[], Awaitable[T] | T],
    timeout: float,
    interval: float = 0.05,
    what: Message = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `check` (sync or async) on the running loop until it returns something truthy; return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
        except ignore:
            result = None  # type: ignore[assignment]
        if result:
            return result  # type: ignore[return-value]
        if loop.time() > deadline:
            raise _failure(what, timeout)
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    what: Message = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Block (sync code: fixtures, threads, subprocess tests) until `check()` is truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except ignore:
            result = None  # type: ignore[assignment]
        if result:
            return result
        if time.monotonic() > deadline:
            raise _failure(what, timeout)
        time.sleep(interval)
