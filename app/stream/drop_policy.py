"""Drop policies: which decoded frames get converted for analysis, and why every other one was dropped.

The capture thread asks a `FrameGate` about each decoded frame (`wants(seq, now)`), converts only the
frames it says yes to, and hands them over with `deliver()`. The consumer (the `Sampler`, in the event
loop) takes them with `await next()`. The hand-off is pull-based with a single slot: a frame is
converted only while a consumer is waiting for one, so nothing queues and no CPU is spent on pixels
nobody will analyse.

Policies (`DropPolicy`):
- `latest` (default): analyse at `analysis_fps`, always the newest decoded frame. While the analyzer is
  busy, due frames are skipped (`busy`); when it asks again it gets the next decoded frame at once.
- `every_nth`: analyse decoded frames whose sequence number is a multiple of N (deterministic, rate =
  stream FPS / N). A selected frame that arrives while the analyzer is busy is skipped (`busy`).

Drop reasons (`DropReason`, the keys of `DropCounter.snapshot()` and of `frames_dropped`); every
decoded frame that is not analysed lands in exactly one of them:
- `not_sampled`: outside the analysis rate (or not an Nth frame), or decoded before the consumer first
  asked. By design and free: never converted.
- `busy`: due for analysis while the analyzer was still working on an earlier frame; never converted.
  `latest` counts one per missed analysis tick, `every_nth` one per missed Nth frame.
- `superseded`: converted, but no consumer was left to take it (the sampler was closed meanwhile).
- `convert_failed`: `retrieve()` failed on a decoded frame that was due for analysis.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from enum import StrEnum

from app.metrics import FRAMES_DROPPED
from app.stream.frame import Frame


class DropPolicy(StrEnum):
    LATEST = "latest"
    EVERY_NTH = "every_nth"


class DropReason(StrEnum):
    NOT_SAMPLED = "not_sampled"
    BUSY = "busy"
    SUPERSEDED = "superseded"
    CONVERT_FAILED = "convert_failed"


class DropCounter:
    """Thread-safe drop counts by reason; mirrored to `argus_frames_dropped{camera,reason}` when labelled."""

    def __init__(self, camera: str | None = None) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._camera = camera
        self._children: dict[str, object] = {}

    def add(self, reason: DropReason | str, n: int = 1) -> None:
        key = str(reason)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n
        if self._camera is not None:
            FRAMES_DROPPED.labels(self._camera, key).inc(n)

    def get(self, reason: DropReason | str) -> int:
        with self._lock:
            return self._counts.get(str(reason), 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


class FrameGate:
    """Decides, per decoded frame, whether to convert it for analysis; hands converted frames over.

    Capture-thread side: `wants(seq, now)` then, when it said yes and the conversion worked,
    `deliver(frame, now)`. Loop side: `await next()` (None once closed), `close()`.
    `now` is a monotonic time supplied by the caller, so tests drive the gate with a fake clock.
    """

    def __init__(
        self,
        policy: DropPolicy | str = DropPolicy.LATEST,
        analysis_fps: float = 5.0,
        every_n: int = 3,
        drops: DropCounter | None = None,
    ) -> None:
        self.drops = drops or DropCounter()
        self._lock = threading.Lock()
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[Frame | None]] | None = None
        self._closed = False
        self._started = False  # until the consumer first asks, nothing counts as busy
        self._next_tick = float("-inf")  # latest: monotonic time the next analysis frame is due
        self._owed = False  # latest: a tick passed while busy, so the next ready request is served at once
        self.delivered = 0
        self.configure(policy, analysis_fps, every_n)

    def configure(self, policy: DropPolicy | str, analysis_fps: float, every_n: int = 3) -> None:
        """Change policy or rate on a running camera (PATCH), without reconnecting."""
        if not 0 < analysis_fps <= 1000:
            raise ValueError("analysis_fps must be > 0")
        if every_n < 1:
            raise ValueError("every_n must be >= 1")
        with self._lock:
            self.policy = DropPolicy(policy)
            self.analysis_fps = float(analysis_fps)
            self.every_n = int(every_n)
            self._period = 1.0 / self.analysis_fps

    @property
    def waiting(self) -> bool:
        return self._waiter is not None

    # -- capture thread --

    def wants(self, seq: int, now: float) -> bool:
        """True when this decoded frame should be converted and delivered; counts it otherwise."""
        with self._lock:
            armed = self._waiter is not None
            if not self._started:
                reason = DropReason.NOT_SAMPLED
            elif self.policy is DropPolicy.EVERY_NTH:
                if seq % self.every_n:
                    reason = DropReason.NOT_SAMPLED
                elif armed:
                    return True
                else:
                    reason = DropReason.BUSY
            elif armed and (self._owed or now >= self._next_tick):
                return True
            elif now < self._next_tick:
                reason = DropReason.NOT_SAMPLED
            else:  # due, but the analyzer is still busy: one drop per missed tick, not per frame
                reason = DropReason.BUSY
                self._owed = True
                self._next_tick += self._period
                if self._next_tick <= now:
                    self._next_tick = now + self._period
        self.drops.add(reason)
        return False

    def deliver(self, frame: Frame, now: float) -> None:
        with self._lock:
            waiter, self._waiter = self._waiter, None
            if self.policy is DropPolicy.LATEST:
                if self._owed or now - self._next_tick >= self._period:
                    self._next_tick = now + self._period  # resync after a stall: no catch-up burst
                else:
                    self._next_tick += self._period  # keep the cadence, whatever the frame jitter
                self._owed = False
        if waiter is None:
            self.drops.add(DropReason.SUPERSEDED)
            return
        self.delivered += 1
        loop, future = waiter
        loop.call_soon_threadsafe(_resolve, future, frame)

    # -- event loop --

    async def next(self) -> Frame | None:
        """The next frame due for analysis; None once the gate is closed. One waiter at a time."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Frame | None] = loop.create_future()
        with self._lock:
            if self._closed:
                return None
            if self._waiter is not None:
                raise RuntimeError("FrameGate.next() already has a waiter")
            self._waiter = (loop, future)
            self._started = True
        try:
            return await future
        finally:
            with self._lock:
                if self._waiter is not None and self._waiter[1] is future:
                    self._waiter = None

    def close(self) -> None:
        """Wake the waiting consumer with None; later `next()` calls return None at once. Any thread."""
        with self._lock:
            self._closed = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            loop, future = waiter
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, future, None)

    @property
    def closed(self) -> bool:
        return self._closed


def _resolve(future: asyncio.Future[Frame | None], frame: Frame | None) -> None:
    if not future.done():
        future.set_result(frame)
