"""Deduplicator: one alert per (rule, camera, event type) per window, measured from the window's first alert.

A storm therefore yields one alert per window, never zero. Suppressed hits are counted on the window so
the engine can add them to the kept alert's rows. The clock is injected so tests are exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

DedupKey = tuple[int, int | None, str]  # (rule_id, camera_id, event_type)


@dataclass
class Window:
    opened_at: float
    alert_ids: list[str]
    suppressed: int = 0


@dataclass
class Deduplicator:
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 10_000  # bound on memory; the oldest windows go first
    _windows: dict[DedupKey, Window] = field(default_factory=dict)

    def suppresses(self, key: DedupKey, window_s: float) -> Window | None:
        """The open window that swallows this hit (counted), or None when a new alert may be raised."""
        window = self._windows.get(key)
        if window is None or window_s <= 0 or self.clock() - window.opened_at >= window_s:
            return None
        window.suppressed += 1
        return window

    def open(self, key: DedupKey, alert_ids: list[str]) -> Window:
        self._windows.pop(key, None)  # re-insert so dict order stays oldest-first
        window = Window(self.clock(), alert_ids)
        self._windows[key] = window
        while len(self._windows) > self.max_keys:
            del self._windows[next(iter(self._windows))]
        return window

    def forget(self, alert_ids: set[str]) -> None:
        """Alerts that were never written: a window left with none of them must not swallow the next hits."""
        if not alert_ids:
            return
        for key, window in list(self._windows.items()):
            kept = [a for a in window.alert_ids if a not in alert_ids]
            if len(kept) < len(window.alert_ids):
                window.alert_ids = kept
                if not kept:
                    del self._windows[key]

    def __len__(self) -> int:
        return len(self._windows)

    # -- DedupWindows (the engine's interface) --

    async def admit(self, key: DedupKey, window_s: float, alert_ids: list[str]) -> list[str] | None:
        window = self.suppresses(key, window_s)
        if window is not None:
            return window.alert_ids
        self.open(key, alert_ids)
        return None

    async def release(self, alert_ids: set[str]) -> None:
        self.forget(alert_ids)


class DedupWindows(Protocol):
    """What the alert engine asks: the local Deduplicator on one node, app.cluster.dedup across nodes."""

    async def admit(self, key: DedupKey, window_s: float, alert_ids: list[str]) -> list[str] | None:
        """None: no window is open, so one opens now with `alert_ids` (raise them); otherwise the alert
        ids of the open window that swallows this hit."""
        ...

    async def release(self, alert_ids: set[str]) -> None:
        """These alerts were never written: a window holding only them must not swallow the next hits."""
        ...
