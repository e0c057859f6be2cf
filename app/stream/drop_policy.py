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
- `keyframe_burst`: for many quiet cameras. While calm, analyse only the stream's keyframes (the
  source reads FFmpeg's packet key flag, `CAP_PROP_LRF_HAS_KEY_FRAME`, after each `grab()`): whole
  pictures, one per GOP (every 2 s for a 15 FPS camera with a 30-frame GOP), at most `analysis_fps`.
  While a burst is flagged (`set_burst(True)`: the pipeline does so while an event is open) it is
  `latest`: the newest frame at `analysis_fps`, so the burst is followed from its first keyframe (its
  oldest frame seen) to its newest. A source that cannot tell keyframes (no flag in the OpenCV build,
  a backend without it) or a GOP longer than `KEYFRAME_MAX_GAP_S` still gets one frame per that gap,
  so a camera is never left unanalysed; MJPEG (every frame a keyframe) degrades to `latest`.

Drop reasons (`DropReason`, the keys of `DropCounter.snapshot()` and of `frames_dropped`); every
decoded frame that is not analysed lands in exactly one of them:
- `not_sampled`: outside the analysis rate (or not an Nth frame, or not a keyframe while calm), or
  decoded before the consumer first asked. By design and free: never converted.
- `busy`: due for analysis while the analyzer was still working on an earlier frame; never converted.
  `latest` counts one per missed analysis tick, `every_nth` one per missed Nth frame, `keyframe_burst`
  one per missed keyframe while calm.
- `superseded`: converted, but no consumer was left to take it (the sampler was closed meanwhile).
- `convert_failed`: the conversion failed on a decoded frame that was due for analysis.
- `not_decoded`: demuxed and kept in the packet ring but never decoded (the activity gate was calm and
  it was not a keyframe due for a check, or it came before the stream's first keyframe). Free.
- `decode_failed`: the decoder rejected the packet (corrupt data); it resyncs at the next keyframe.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from enum import StrEnum
from typing import Any

from app.metrics import FRAMES_DROPPED
from app.stream.frame import Frame

KEYFRAME_MAX_GAP_S = 10.0  # keyframe_burst: analyse at least this often, keyframe or not


class DropPolicy(StrEnum):
    LATEST = "latest"
    EVERY_NTH = "every_nth"
    KEYFRAME_BURST = "keyframe_burst"


class DropReason(StrEnum):
    NOT_SAMPLED = "not_sampled"
    BUSY = "busy"
    SUPERSEDED = "superseded"
    CONVERT_FAILED = "convert_failed"
    NOT_DECODED = "not_decoded"  # demuxed and kept in the ring, not decoded (gate calm, not a due keyframe)
    DECODE_FAILED = "decode_failed"


class DropCounter:
    """Thread-safe drop counts by reason; mirrored to `argus_frames_dropped{camera,reason}` when labelled."""

    def __init__(self, camera: str | None = None) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._camera = camera
        self._children: dict[str, Any] = {}

    def add(self, reason: DropReason | str, n: int = 1) -> None:
        key = str(reason)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n
        if self._camera is not None:
            child = self._children.get(key)
            if child is None:  # labels() is a locked dict lookup: once per reason, not per frame
                child = self._children[key] = FRAMES_DROPPED.labels(self._camera, key)
            child.inc(n)

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
        self._burst = False  # keyframe_burst: flagged by the consumer, behaves as latest meanwhile
        self._key_at: float | None = None  # keyframe_burst: when the last keyframe (or stand-in) came
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

    @property
    def needs_keyframes(self) -> bool:
        """The source should read each frame's key flag (only `keyframe_burst` uses it)."""
        return self.policy is DropPolicy.KEYFRAME_BURST

    @property
    def burst(self) -> bool:
        return self._burst

    def set_burst(self, active: bool) -> None:
        """`keyframe_burst`: follow every analysis tick (True) or keyframes only (False). Any thread."""
        with self._lock:
            if active and not self._burst:
                self._next_tick = float("-inf")  # the burst's newest frame at once, not a period later
            self._burst, self._owed = bool(active), False

    # -- capture thread --

    def wants(self, seq: int, now: float, key: bool | None = None) -> bool:
        """True when this decoded frame should be converted and delivered; counts it otherwise.

        `key`: whether the frame is a keyframe, None when the source cannot tell (`keyframe_burst` only).
        """
        with self._lock:
            armed = self._waiter is not None
            if not self._started:
                reason = DropReason.NOT_SAMPLED
            elif self.policy is DropPolicy.KEYFRAME_BURST and not self._burst:
                if not self._keyframe(now, key) or now < self._next_tick:
                    reason = DropReason.NOT_SAMPLED
                elif armed:
                    return True
                else:
                    reason = DropReason.BUSY
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

    def _keyframe(self, now: float, key: bool | None) -> bool:
        """keyframe_burst, calm: a keyframe, or a stand-in once `KEYFRAME_MAX_GAP_S` passed without one."""
        if key:
            self._key_at = now
            return True
        if self._key_at is None:
            self._key_at = now  # start the gap clock at the first frame seen
            return False
        if now - self._key_at >= KEYFRAME_MAX_GAP_S:
            self._key_at = now
            return True
        return False

    def deliver(self, frame: Frame, now: float) -> None:
        with self._lock:
            waiter, self._waiter = self._waiter, None
            if self.policy is not DropPolicy.EVERY_NTH:  # latest, and keyframe_burst's analysis_fps cap
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
