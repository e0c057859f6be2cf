"""Named asyncio tasks whose crash is logged, never silently lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("argus.tasks")
_live: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _live.add(task)  # keep a strong reference: the loop holds tasks only weakly
    task.add_done_callback(_done)
    return task


def _done(task: asyncio.Task[Any]) -> None:
    _live.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task %s crashed", task.get_name(), exc_info=exc)


async def cancel_and_wait(task: asyncio.Task[Any] | None, timeout: float = 5.0) -> None:
    if task is None or task.done():
        return
    task.cancel()
    try:
        await asyncio.wait_for(task, timeout)
    except (asyncio.CancelledError, TimeoutError):
        pass
    except Exception:
        log.exception("task %s failed while stopping", task.get_name())
