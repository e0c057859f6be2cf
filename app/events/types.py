"""Runtime event values: what goes on the bus (never ORM rows)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

from app.kit.severity import Severity


class EventKind(StrEnum):
    anomaly = "anomaly"
    object = "object"
    external = "external"


class Phase(StrEnum):
    """Where in its episode an event is: opened, updated while it lasts (or described), closed."""

    open = "open"
    update = "update"
    close = "close"


@dataclass(frozen=True, slots=True)
class NewEvent:
    camera_id: int | None
    type: str
    severity: Severity
    started_at: datetime
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    score: float | None = None
    ended_at: datetime | None = None
    description: str | None = None
    snapshot_path: str | None = None
    source: str = "pipeline"
    data: dict[str, Any] = field(default_factory=dict)
    phase: Phase = Phase.open
    fence: int | None = None  # cluster mode: the camera lease's token (a stale one's writes are refused)
    produced_at: float = 0.0  # monotonic-free wall time when put on the bus (latency benchmarks)

    def evolve(self, **changes: Any) -> Self:
        """A later state of the same episode (same id): the logger upserts it, alerts may re-check it."""
        return replace(self, **changes)

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "camera_id": self.camera_id,
            "type": self.type,
            "severity": str(self.severity),
            "score": self.score,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "description": self.description,
            "snapshot_path": self.snapshot_path,
            "source": self.source,
            "data": self.data,
            "fence": self.fence,
        }

    def to_json(self) -> dict[str, Any]:
        row = self.to_row()
        del row["fence"]  # internal to the cluster: never in payloads (to_record() keeps it for spill files)
        row["started_at"] = self.started_at.isoformat()
        row["ended_at"] = self.ended_at.isoformat() if self.ended_at else None
        row["phase"] = str(self.phase)
        return row

    def to_record(self) -> dict[str, Any]:
        """to_json() plus the fencing token: the internal form (spill files), so a replay is still checked."""
        return {**self.to_json(), "fence": self.fence}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Self:
        """From to_json() or to_record(); a payload has no token (unfenced)."""
        return cls(
            id=d["id"],
            camera_id=d.get("camera_id"),
            type=d["type"],
            severity=Severity(d["severity"]),
            score=d.get("score"),
            started_at=datetime.fromisoformat(d["started_at"]),
            ended_at=datetime.fromisoformat(d["ended_at"]) if d.get("ended_at") else None,
            description=d.get("description"),
            snapshot_path=d.get("snapshot_path"),
            source=d.get("source", "pipeline"),
            data=d.get("data") or {},
            phase=Phase(d.get("phase", "open")),
            fence=d.get("fence"),
        )


def utcnow() -> datetime:
    return datetime.now(UTC)
