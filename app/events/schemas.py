"""Event API bodies: EventRead (stored rows), EventIngest (POST from other systems), EventAccepted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, computed_field, field_validator

from app.kit.schemas import BodyId, IsoDateTime, Schema, json_limits
from app.kit.severity import Severity

# Limit ingested data to 16 KB of JSON to avoid bloating the events table from outside.
MAX_DATA_BYTES = 16_384

EVENT_TYPE_PATTERN = r"^[\w.:-]+$"
EventType = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=EVENT_TYPE_PATTERN)
]


class EventRead(Schema):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2c9e0b7d5a4f1e9c8b6a5d4e3f2a1b",
                    "camera_id": 1,
                    "type": "anomaly",
                    "severity": "high",
                    "score": 4.2,
                    "started_at": "2026-11-23T17:00:00Z",
                    "ended_at": "2026-11-23T17:00:06Z",
                    "description": None,
                    "source": "pipeline",
                    "data": {"peak_score": 5.1, "frames": 31},
                    "snapshot_url": "/api/events/3f2c9e0b7d5a4f1e9c8b6a5d4e3f2a1b/snapshot.jpg",
                    "clip_url": "/api/events/3f2c9e0b7d5a4f1e9c8b6a5d4e3f2a1b/clip.mp4",
                    "clip_urls": ["/api/events/3f2c9e0b7d5a4f1e9c8b6a5d4e3f2a1b/clip.mp4"],
                    "created_at": "2026-11-23T17:00:01Z",
                    "updated_at": "2026-11-23T17:00:07Z",
                }
            ]
        },
    )

    id: str
    camera_id: int | None
    type: str
    severity: Severity
    score: float | None
    started_at: datetime
    ended_at: datetime | None
    description: str | None
    source: str
    data: dict[str, Any]
    snapshot_path: str | None = Field(None, exclude=True)
    clip_path: str | None = Field(None, exclude=True)
    clip_parts: int | None = Field(None, exclude=True)
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def snapshot_url(self) -> str | None:
        return f"/api/events/{self.id}/snapshot.jpg" if self.snapshot_path else None

    @computed_field(  # type: ignore[prop-decorator]
        description="The event's video (MP4, HTTP Range), as soon as its first fragment is written; "
        "a clip longer than ARGUS_CLIP_MAX_S continues in `clip_urls`' next parts."
    )
    @property
    def clip_url(self) -> str | None:
        return f"/api/events/{self.id}/clip.mp4" if self.clip_path else None

    @computed_field(description="Every part of the clip, in order (empty without a clip).")  # type: ignore[prop-decorator]
    @property
    def clip_urls(self) -> list[str]:
        if not self.clip_path:
            return []
        url = f"/api/events/{self.id}/clip.mp4"
        return [url] + [f"{url}?part={n}" for n in range(2, (self.clip_parts or 1) + 1)]


class EventIngest(Schema):
    """An event raised by another system; it takes the same path as a pipeline event."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "camera_id": 1,
                    "type": "door_open",
                    "severity": "high",
                    "score": 1.0,
                    "data": {"door": "loading bay", "badge": "unknown"},
                }
            ]
        },
    )

    camera_id: BodyId | None = Field(None, description="Camera the event belongs to; must exist.")
    type: EventType = Field(description="Short event type: letters, digits, `_ . : -`, at most 64.")
    severity: Severity = Severity.medium
    started_at: IsoDateTime | None = Field(None, description="When it happened (default: now). UTC if naive.")
    score: float | None = Field(None, allow_inf_nan=False, strict=True)
    data: Annotated[dict[str, Any], json_limits(MAX_DATA_BYTES)] = Field(
        default_factory=dict,
        description="Free JSON: at most 16 KB, 32 levels deep and 1,000 keys and items; finite numbers, "
        "no NUL characters.",
    )

    @field_validator("started_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


class EventAccepted(Schema):
    id: str = Field(description="The event id; the row appears once the logger flushes (about 1 s).")
