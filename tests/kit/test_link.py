"""Link: connection state for health, a warning per distinct error, reconnects counted, never a password."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, Gauge

from app.kit.backoff import Backoff
from app.kit.link import Link


def make_link() -> tuple[Link, Gauge]:
    gauge = Gauge("test_link_connected", "test", registry=CollectorRegistry())
    return Link("mqtt://u:****@h", logging.getLogger("test.link"), gauge, Backoff(1.0, cap=4.0)), gauge


class TestLink:
    def test_state_gauge_backoff_and_reconnects(self) -> None:
        link, gauge = make_link()
        link.lost(OSError("refused"))  # never connected yet: not a reconnect
        assert link.reconnects == 0 and [link.next_delay(), link.next_delay()] == [1.0, 2.0]
        link.up()
        assert link.connected and gauge._value.get() == 1 and link.next_delay() == 1.0  # backoff reset
        link.lost(OSError("reset"))
        assert not link.connected and gauge._value.get() == 0 and link.reconnects == 1

    def test_one_warning_per_error_and_secrets_masked(self, caplog: pytest.LogCaptureFixture) -> None:
        link, _ = make_link()
        with caplog.at_level(logging.WARNING, "test.link"):
            for _ in range(3):
                link.lost(OSError("cannot reach mqtt://argus:hunter2@broker:1883"))
        assert len(caplog.records) == 1
        assert link.last_error is not None and "hunter2" not in link.last_error
        assert "hunter2" not in caplog.text
