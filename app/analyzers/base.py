"""The Analyzer interface and the values analyzers return.

Analyzers see frames and the observations of the analyzers they depend on; they return an Observation.
Stateful analyzers (VAD episodes, object tracks) also report Findings: an episode opening, updating or
closing. The pipeline turns findings into events; analyzers never import the events stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from app.kit.severity import Severity
from app.stream.frame import Frame

FindingPhase = Literal["open", "update", "close"]


@dataclass(frozen=True, slots=True)
class Detection:
    x1: float  # box corners in the stream's own pixel coordinates
    y1: float
    x2: float
    y2: float
    confidence: float
    class_id: int
    label: str
    track_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [round(self.x1, 1), round(self.y1, 1), round(self.x2, 1), round(self.y2, 1)],
            "confidence": round(self.confidence, 4),
            "class_id": self.class_id,
            "label": self.label,
            "track_id": self.track_id,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # becomes the event type: "anomaly", "object", ...
    key: str  # the episode within the camera: "anomaly", "track:17"
    phase: FindingPhase
    severity: Severity  # a plain "low" .. "critical" from a plugin works too (StrEnum)
    score: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # The picture the event should show instead of the raw frame (e.g. the track's best frame with its box
    # drawn); on an update it replaces the event's snapshot. None: the open keeps the frame as it came.
    snapshot: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Observation:
    analyzer: str
    score: float | None = None
    detections: tuple[Detection, ...] = ()
    findings: tuple[Finding, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Analyzer(Protocol):
    name: str
    depends: tuple[str, ...]

    async def process(self, frame: Frame, deps: Mapping[str, Observation]) -> Observation: ...

    def finish(self) -> tuple[Finding, ...]:
        """The camera is stopping: return a closing Finding for every episode still open."""
        ...
