"""Events forwarded by edge sites (another Argus): the central side of store and forward.

An edge sends each of its events as its row is now (the same event again after every change). The
central side stores each event once, by its id (a resend is an update of the same row), marks it with
the edge's name (`source` "edge:<name>", `data.edge`), and hands it to its alert rules and live feeds like
its own: through the ingest committer, so an acknowledgement means stored. An event it already has goes
on as an update or a close, so a resend never raises a second alert.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import ArgusError
from app.events.ingest import IngestCommitter, IngestUnavailable
from app.events.repository import EventRepository
from app.events.schemas import MAX_DATA_BYTES, EventType
from app.events.snapshots import save_snapshot
from app.events.types import NewEvent, Phase
from app.kit.schemas import IsoDateTime, Schema, json_limits
from app.kit.severity import Severity

MAX_BATCH = 1000
EDGE_NAME_PATTERN = r"^[\w.-]{1,40}$"
EdgeName = Annotated[str, StringConstraints(pattern=EDGE_NAME_PATTERN)]


class ForwardedEvent(Schema):
    """One event as an edge forwards it: its row as it is now."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=36, pattern=r"^[\w-]+$")
    camera_id: int | None = Field(None, strict=True, ge=1, le=2**31 - 1, description="on the edge")
    camera: str | None = Field(None, max_length=100, description="the camera's name on the edge")
    type: EventType
    severity: Severity
    score: float | None = Field(None, allow_inf_nan=False, strict=True)
    started_at: IsoDateTime
    ended_at: IsoDateTime | None = None
    description: str | None = Field(None, max_length=4000)
    data: Annotated[dict[str, Any], json_limits(MAX_DATA_BYTES)] = Field(default_factory=dict)
    snapshot_url: str | None = Field(None, max_length=2048, description="on the edge")
    clip_url: str | None = Field(None, max_length=2048, description="on the edge")
    snapshot_jpeg: str | None = Field(
        None,
        max_length=2_800_000,
        description="the snapshot itself, base64 (edges with ARGUS_FORWARD_MEDIA=snapshots)",
    )

    @field_validator("started_at", "ended_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


class EventBatch(Schema):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "edge": "site-a",
                    "events": [
                        {
                            "id": "0bb578e13a644640b589978632fd502a",
                            "camera_id": 1,
                            "camera": "lobby",
                            "type": "anomaly",
                            "severity": "high",
                            "score": 4.2,
                            "started_at": "2026-11-30T14:05:01Z",
                        }
                    ],
                }
            ]
        },
    )

    edge: EdgeName = Field(description="The sending site's name (ARGUS_FORWARD_NAME there)")
    events: list[ForwardedEvent] = Field(max_length=MAX_BATCH)


class BatchStored(Schema):
    stored: int = Field(description="Events stored (new or updated)")
    rejected: int = Field(description="Events the database refused for their content (logged)")


def to_new_event(edge: str, f: ForwardedEvent, known: bool, snapshot_path: str | None = None) -> NewEvent:
    phase = Phase.close if f.ended_at is not None else Phase.update if known else Phase.open
    origin = {"name": edge, "camera_id": f.camera_id, "camera": f.camera}
    origin |= {k: v for k, v in (("snapshot_url", f.snapshot_url), ("clip_url", f.clip_url)) if v}
    return NewEvent(
        id=f.id,
        camera_id=None,  # the edge's camera ids mean nothing here; data.edge says which camera it was
        type=f.type,
        severity=f.severity,
        started_at=f.started_at,
        ended_at=f.ended_at,
        score=f.score,
        description=f.description,
        source=f"edge:{edge}"[:32],
        snapshot_path=snapshot_path,
        data={**f.data, "edge": origin},
        phase=phase,
    )


async def store_forwarded(
    sessionmaker: async_sessionmaker[AsyncSession],
    ingest: IngestCommitter,
    data_dir: Path,
    edge: str,
    events: list[ForwardedEvent],
) -> BatchStored:
    """Commit `events` (in order); raises IngestUnavailable when nothing can be stored now (the edge
    keeps them and retries). A row the database refuses for its content is counted, not retried."""
    async with sessionmaker() as session:
        known = await EventRepository(session).existing_ids([f.id for f in events])
    snapshots = {f.id: await _save_snapshot(data_dir, f) for f in events if f.snapshot_jpeg}
    results = await asyncio.gather(
        *(ingest.submit(to_new_event(edge, f, f.id in known, snapshots.get(f.id))) for f in events),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, IngestUnavailable):
            raise result
        if isinstance(result, BaseException) and not isinstance(result, ArgusError):
            raise result
    rejected = sum(isinstance(r, ArgusError) for r in results)
    return BatchStored(stored=len(events) - rejected, rejected=rejected)


async def _save_snapshot(data_dir: Path, f: ForwardedEvent) -> str | None:
    """The forwarded JPEG under this server's snapshots (so /api/events/{id}/snapshot.jpg serves it);
    anything that is not a JPEG is ignored."""
    try:
        jpeg = base64.b64decode(f.snapshot_jpeg or "", validate=True)
    except (binascii.Error, ValueError):
        return None
    if not jpeg.startswith(b"\xff\xd8"):
        return None
    return await save_snapshot(data_dir, f.id, None, jpeg, at=f.started_at)
