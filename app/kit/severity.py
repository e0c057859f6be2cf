"""Severity: the one scale every stage shares (findings, events, alert rules, VLM verdicts, settings).

A StrEnum, so JSON, the API, OpenAPI and the database hold the plain strings "low" .. "critical";
`rank` (and the comparisons built on it) give the order: low < medium < high < critical.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Severity | str) -> bool:
        return self.rank >= Severity(other).rank

    @classmethod
    def worst(cls, *values: Severity | str) -> Severity:
        """The highest of `values` (at least one)."""
        return max((cls(v) for v in values), key=lambda s: s.rank)


_RANK = {Severity.low: 0, Severity.medium: 1, Severity.high: 2, Severity.critical: 3}
