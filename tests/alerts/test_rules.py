"""matches(): cameras, types, minimum severity, enabled; and which severities go out at once."""

from __future__ import annotations

from app.alerts.rules import RuleSpec, is_immediate, matches
from app.kit.severity import Severity
from tests.alerts.conftest import event


def rule(**kw: object) -> RuleSpec:
    values: dict[str, object] = {
        "id": 1,
        "name": "r",
        "camera_ids": frozenset(),
        "event_types": frozenset(),
        "min_severity": Severity.high,
        "webhook_ids": (1,),
        "dedup_window_s": 15.0,
    }
    values.update(kw)
    return RuleSpec(**values)  # type: ignore[arg-type]


class TestMatches:
    def test_empty_lists_match_every_camera_and_type(self) -> None:
        assert matches(rule(), event(camera_id=7, type_="door_open"))
        assert matches(rule(), event(camera_id=None))

    def test_camera_filter(self) -> None:
        r = rule(camera_ids=frozenset({1, 2}))
        assert matches(r, event(camera_id=2))
        assert not matches(r, event(camera_id=3))
        assert not matches(r, event(camera_id=None))

    def test_type_filter(self) -> None:
        r = rule(event_types=frozenset({"anomaly"}))
        assert matches(r, event(type_="anomaly"))
        assert not matches(r, event(type_="person"))

    def test_min_severity_is_inclusive(self) -> None:
        r = rule(min_severity=Severity.high)
        assert matches(r, event(severity="high"))
        assert matches(r, event(severity="critical"))
        assert not matches(r, event(severity="medium"))

    def test_disabled_rule_matches_nothing(self) -> None:
        assert not matches(rule(enabled=False), event(severity="critical"))


def test_priority_split() -> None:
    assert [is_immediate(s) for s in Severity] == [False, False, True, True]
