"""MicroBatcher: gathers concurrent requests for one model from every camera into one run.

The first waiting request opens a batch. It closes as soon as it holds as many requests as the previous
batch did (the concurrency seen so far), or `max_batch`, or when `max_wait_ms` has passed since that
first request arrived. So N cameras that each wait for their answer are served as one batch of N with
no idle wait; a single camera never waits for company that does not exist; and while a batch runs new
requests queue, so under load the next batch is bigger and starts at once. `max_wait_ms` bounds the
wait when fewer requests come than last time (a camera left, or frames arrive out of step).

`runs_in_flight` > 1 lets the next batch start while one still runs (the model must allow as many
concurrent runs): on a CPU whose cores one run does not keep busy, two single-threaded runs side by
side can beat one run spread over the cores. Default 1: one batch at a time.

The queue holds at most one request per awaiting caller (each camera awaits its own result), so it is
bounded by the number of callers; requests of a different shape wait for a batch of their own shape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from app.kit.tasks import cancel_and_wait, spawn

log = logging.getLogger("argus.inference")

RunBatch = Callable[[Sequence[np.ndarray]], list[list[np.ndarray]]]
# called after each run with (batch size, seconds each request waited, run seconds)
OnBatch = Callable[[int, list[float], float], None]


@dataclass(slots=True)
class _Request:
    item: np.ndarray
    future: asyncio.Future[list[np.ndarray]]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(
        self,
        name: str,
        run: RunBatch,
        *,
        executor: Executor | None,
        max_batch: int = 16,
        max_wait_ms: float = 4.0,
        on_batch: OnBatch | None = None,
        runs_in_flight: int = 1,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if runs_in_flight < 1:
            raise ValueError("runs_in_flight must be >= 1")
        self.name = name
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.runs_in_flight = runs_in_flight
        self._run = run
        self._executor = executor
        self._on_batch = on_batch
        self._pending: deque[_Request] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False
        self._last_size = 0

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    async def submit(self, item: np.ndarray) -> list[np.ndarray]:
        if self._closed:
            raise RuntimeError(f"batcher {self.name} is closed")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._slots = asyncio.Semaphore(self.runs_in_flight)
            self._task = spawn(self._loop(), name=f"argus.batcher:{self.name}")
        assert self._wakeup is not None
        request = _Request(item, loop.create_future())
        self._pending.append(request)
        self._wakeup.set()
        return await request.future

    async def close(self) -> None:
        self._closed = True
        await cancel_and_wait(self._task)
        self._task = None
        for task in list(self._running):
            await cancel_and_wait(task)
        while self._pending:
            request = self._pending.popleft()
            if not request.future.done():
                request.future.set_exception(RuntimeError(f"batcher {self.name} closed"))

    async def _loop(self) -> None:
        assert self._wakeup is not None and self._slots is not None
        log.debug("batcher %s started (max_batch %d, max_wait %.1f ms, %d in flight)", self.name,
                  self.max_batch, self.max_wait_s * 1000, self.runs_in_flight)  # fmt: skip
        try:
            while True:
                while not self._pending:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                await self._slots.acquire()
                try:
                    await self._fill()
                    batch = self._take()
                except BaseException:
                    self._slots.release()
                    raise
                if not batch:
                    self._slots.release()
                elif self.runs_in_flight == 1:
                    try:
                        await self._execute(batch)
                    finally:
                        self._slots.release()
                else:
                    task = asyncio.get_running_loop().create_task(self._execute(batch))
                    self._running.add(task)
                    task.add_done_callback(self._run_done)
        finally:
            log.debug("batcher %s stopped", self.name)

    def _run_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        assert self._slots is not None
        self._slots.release()

    async def _fill(self) -> None:
        """Wait until the batch is as big as the last one, or full, or the oldest request waited max_wait."""
        assert self._wakeup is not None
        await asyncio.sleep(0)  # callers woken by the previous batch queue their next request first
        target = min(self.max_batch, max(1, self._last_size))
        deadline = self._pending[0].queued_at + self.max_wait_s
        while len(self._pending) < target:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Request]:
        """Up to max_batch live requests of the head's shape; cancelled callers are dropped here."""
        while self._pending and self._pending[0].future.done():
            self._pending.popleft()
        if not self._pending:
            return []
        head = self._pending[0]
        key = (head.item.shape, head.item.dtype)
        batch: list[_Request] = []
        rest: deque[_Request] = deque()
        while self._pending and len(batch) < self.max_batch:
            request = self._pending.popleft()
            if request.future.done():
                continue
            if (request.item.shape, request.item.dtype) == key:
                batch.append(request)
            else:
                rest.append(request)
        rest.extend(self._pending)
        self._pending = rest
        return batch

    async def _execute(self, batch: list[_Request]) -> None:
        started = time.perf_counter()
        waits = [started - r.queued_at for r in batch]
        self._last_size = len(batch)
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._run, [r.item for r in batch])
        except asyncio.CancelledError:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(RuntimeError(f"batcher {self.name} closed"))
            raise
        except Exception as exc:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        run_s = time.perf_counter() - started
        for request, result in zip(batch, results, strict=True):
            if not request.future.done():  # the caller may have given up (analyzer time budget)
                request.future.set_result(result)
        if self._on_batch is not None:
            self._on_batch(len(batch), waits, run_s)
