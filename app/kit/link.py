"""Link: the state of one outbound connection (MQTT broker, central Argus) as /api/health shows it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import Gauge

from app.kit.backoff import Backoff
from app.kit.redact import mask_text

ERROR_MAX = 300


@dataclass
class Link:
    """Connected or not, how often a working connection was lost, and the last error (masked, one
    per outage in the log). `gauge` mirrors `connected` for /metrics."""

    target: str  # a masked URL, for log lines
    log: logging.Logger
    gauge: Gauge
    backoff: Backoff | None = None  # default: 1 s doubling to 30 s, with jitter
    connected: bool = False
    reconnects: int = 0
    last_error: str | None = None

    def __post_init__(self) -> None:
        if self.backoff is None:
            self.backoff = Backoff(initial=1.0, cap=30.0, jitter=0.2)

    def up(self) -> None:
        self.connected = True
        assert self.backoff is not None
        self.backoff.reset()
        self.gauge.set(1)
        self.log.info("connected to %s", self.target)

    def lost(self, exc: BaseException) -> None:
        error = mask_text(f"{type(exc).__name__}: {exc}")[:ERROR_MAX]
        if self.connected or error != self.last_error:
            self.log.warning("%s: %s (retrying with backoff)", self.target, error)
        if self.connected:
            self.reconnects += 1
        self.last_error = error
        self.down()

    def down(self) -> None:
        self.connected = False
        self.gauge.set(0)

    def next_delay(self) -> float:
        assert self.backoff is not None
        return self.backoff.next_delay()
