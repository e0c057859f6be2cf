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
