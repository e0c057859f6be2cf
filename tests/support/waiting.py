"""Wait on a condition with a deadline (tests never sleep to synchronise)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float, interval: float = 0.25) -> T:
    """Poll `check` until it returns something truthy, and return that; AssertionError at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
    return result
