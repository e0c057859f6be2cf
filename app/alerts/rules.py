"""Rule matching, pure: a rule is a frozen snapshot of its row, so the engine never holds ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.events.types import NewEvent
from app.kit.severity import Severity


@dataclass(frozen=True, slots=True)
class RuleSpec:
    id: int
    name: str
    camera_ids: frozenset[int]  # empty = every camera (and events without one)
    event_types: frozenset[str]  # empty = every type
    min_severity: Severity
    webhook_ids: tuple[int, ...]
    dedup_window_s: float
    enabled: bool = True

    @classmethod
    def from_row(cls, row: Any) -> RuleSpec:
        return cls(
            id=row.id,
            name=row.name,
            camera_ids=frozenset(row.camera_ids or ()),
            event_types=frozenset(row.event_types or ()),
            min_severity=Severity(row.min_severity),
            webhook_ids=tuple(row.webhook_ids or ()),
            dedup_window_s=float(row.dedup_window_s),
            enabled=bool(row.enabled),
        )


def matches(rule: RuleSpec, event: NewEvent) -> bool:
    if not rule.enabled:
        return False
    if rule.camera_ids and event.camera_id not in rule.camera_ids:
        return False
    if rule.event_types and event.type not in rule.event_types:
        return False
    return Severity(event.severity).at_least(rule.min_severity)


def is_immediate(severity: Severity | str) -> bool:
    """critical/high go out at once; medium/low wait for the digest."""
    return Severity(severity).at_least(Severity.high)
