"""Events per second over a sliding window (fps in, fps analysed, encodes)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateMeter:
    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()  # ticked from capture threads, read from the loop
        self.total = 0

    def tick(self, n: int = 1) -> None:
        now = self._clock()
        with self._lock:
            self.total += n
            for _ in range(n):
                self._stamps.append(now)
            self._trim(now)

    def rate(self) -> float:
        now = self._clock()
        with self._lock:
            self._trim(now)
            return len(self._stamps) / self._window

    def _trim(self, now: float) -> None:
        edge = now - self._window
        while self._stamps and self._stamps[0] < edge:
            self._stamps.popleft()


class SumMeter:
    """Amounts per second over a sliding window (bytes/s of a stream), one entry per add()."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._entries: deque[tuple[float, int]] = deque()
        self._sum = 0
        self._lock = threading.Lock()
        self.total = 0

    def add(self, amount: int) -> None:
        now = self._clock()
        with self._lock:
            self.total += amount
            self._sum += amount
            self._entries.append((now, amount))
            self._trim(now)

    def rate(self) -> float:
        now = self._clock()
        with self._lock:
            self._trim(now)
            return self._sum / self._window

    def _trim(self, now: float) -> None:
        edge = now - self._window
        while self._entries and self._entries[0][0] < edge:
            self._sum -= self._entries.popleft()[1]
