"""Episodes: an analyzer's findings (open/update/close by key) become one event each, not one per frame."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from app.analyzers.base import Finding
from app.events.bus import EventBus
from app.events.types import NewEvent, Phase
from app.kit.severity import Severity

SnapshotWriter = Callable[[str, int, np.ndarray], Awaitable[str | None]]


@dataclass
class EpisodeTracker:
    """Per camera: keeps the open event of each finding key and publishes its open/update/close."""

    camera_id: int
    bus: EventBus
    save_snapshot: SnapshotWriter
    open_events: dict[str, NewEvent] = field(default_factory=dict)
    fence: int | None = None  # cluster mode: the camera's lease token, carried by every event written

    async def apply(self, finding: Finding, captured_at: float, image: np.ndarray | None) -> None:
        at = datetime.fromtimestamp(captured_at, UTC)
        current = self.open_events.get(finding.key)
        if finding.snapshot is not None:
            image = finding.snapshot
        if finding.phase == "open" and current is None:
            await self._open(finding, at, image)
        elif current is None:
            return  # an update/close for an episode we never saw open (camera restarted): nothing to end
        elif finding.phase == "close":
            del self.open_events[finding.key]
            self.bus.publish(self._evolve(current, finding, Phase.close, ended_at=at))
        else:
            extra: dict[str, object] = {}
            if finding.snapshot is not None:  # a better picture of the same episode: same file, rewritten
                path = await self.save_snapshot(current.id, self.camera_id, finding.snapshot)
                extra["snapshot_path"] = path
            updated = self._evolve(current, finding, Phase.update, **extra)
            self.open_events[finding.key] = self.bus.publish(updated)

    def close_all(self, findings: tuple[Finding, ...] = ()) -> None:
        """Camera stopping: close what the analyzers closed, then anything still open."""
        now = datetime.now(UTC)
        for finding in findings:
            current = self.open_events.pop(finding.key, None)
            if current is not None:
                self.bus.publish(self._evolve(current, finding, Phase.close, ended_at=now))
        for current in self.open_events.values():
            self.bus.publish(current.evolve(phase=Phase.close, ended_at=now, produced_at=0.0))
        self.open_events.clear()

    async def _open(self, finding: Finding, at: datetime, image: np.ndarray | None) -> None:
        event = NewEvent(
            camera_id=self.camera_id,
            type=finding.kind,
            severity=Severity(finding.severity),
            started_at=at,
            score=finding.score,
            data=dict(finding.data),
            fence=self.fence,
        )
        # Known before the snapshot await: a camera stopped meanwhile still closes (and so stores) it.
        self.open_events[finding.key] = event
        if image is not None:
            event = event.evolve(snapshot_path=await self.save_snapshot(event.id, self.camera_id, image))
        self.open_events[finding.key] = self.bus.publish(event)

    @staticmethod
    def _evolve(current: NewEvent, finding: Finding, phase: Phase, **extra: object) -> NewEvent:
        severity = Severity.worst(current.severity, finding.severity)
        score = max((s for s in (current.score, finding.score) if s is not None), default=None)
        data = {**current.data, **finding.data}
        return current.evolve(
            phase=phase, severity=severity, score=score, data=data, produced_at=0.0, **extra
        )
