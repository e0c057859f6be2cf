"""Deduplicator: one alert per (rule, camera, type) per window, counted from the window's first alert."""

from __future__ import annotations

from app.alerts.dedup import Deduplicator
from tests.alerts.conftest import FakeClock


class TestDeduplicator:
    def test_storm_in_one_window_keeps_one_and_counts_the_rest(self) -> None:
        clock = FakeClock()
        dedup = Deduplicator(clock=clock)
        key = (1, 1, "anomaly")
        kept = 0
        for _ in range(20):
            window = dedup.suppresses(key, 15.0)
            if window is None:
                dedup.open(key, ["a1"])
                kept += 1
            clock.advance(0.7)  # 20 events within 14 s
        assert kept == 1
        assert dedup.suppresses(key, 15.0) is not None  # at 14 s: still the same window
        assert dedup._windows[key].suppressed == 20

    def test_other_camera_or_type_is_not_suppressed(self) -> None:
        dedup = Deduplicator(clock=FakeClock())
        dedup.open((1, 1, "anomaly"), ["a1"])
        assert dedup.suppresses((1, 2, "anomaly"), 15.0) is None
        assert dedup.suppresses((1, 1, "person"), 15.0) is None
        assert dedup.suppresses((2, 1, "anomaly"), 15.0) is None  # another rule keeps its own windows

    def test_window_is_measured_from_the_first_alert(self) -> None:
        clock = FakeClock()
        dedup = Deduplicator(clock=clock)
        key = (1, 1, "anomaly")
        dedup.open(key, ["a1"])
        clock.advance(14.9)
        assert dedup.suppresses(key, 15.0) is not None  # hits do not extend the window
        clock.advance(0.1)
        assert dedup.suppresses(key, 15.0) is None  # 15 s after the first alert: a new one may go

    def test_zero_window_never_suppresses(self) -> None:
        dedup = Deduplicator(clock=FakeClock())
        dedup.open((1, 1, "anomaly"), ["a1"])
        assert dedup.suppresses((1, 1, "anomaly"), 0.0) is None

    def test_memory_is_bounded(self) -> None:
        dedup = Deduplicator(clock=FakeClock(), max_keys=3)
        for cam in range(5):
            dedup.open((1, cam, "anomaly"), [f"a{cam}"])
        assert len(dedup) == 3
        assert dedup.suppresses((1, 4, "anomaly"), 15.0) is not None

    def test_forgotten_alerts_no_longer_hold_their_window(self) -> None:
        dedup = Deduplicator(clock=FakeClock())
        dedup.open((1, 1, "anomaly"), ["a1", "a2"])  # one alert per webhook
        dedup.open((1, 2, "anomaly"), ["b1"])
        dedup.forget({"a2"})  # one row of the window was never written: the window stays for a1
        assert dedup.suppresses((1, 1, "anomaly"), 15.0) is not None
        dedup.forget({"a1", "b1"})  # none of a window's rows written: the next hit raises an alert
        assert dedup.suppresses((1, 1, "anomaly"), 15.0) is None
        assert dedup.suppresses((1, 2, "anomaly"), 15.0) is None
        assert len(dedup) == 0
