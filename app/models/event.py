"""Event: one episode (an anomaly, an object visit, an external signal), opened then possibly closed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, UTCDateTime


class Event(TimestampMixin, Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_started_at_id", "started_at", "id"),
        Index("ix_events_camera_started", "camera_id", "started_at"),
        Index("ix_events_type", "type"),
        Index("ix_events_severity", "severity"),
        Index("ix_events_updated_at_id", "updated_at", "started_at", "id"),  # changes in order (0007)
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4 hex, assigned at creation
    camera_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # survives camera deletion
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    snapshot_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    # set by app.recording (a direct UPDATE), never by the logger's upsert: part 1's path, and parts
    clip_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    clip_parts: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    source: Mapped[str] = mapped_column(String(32), default="pipeline", nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    # cluster mode: the camera lease's token when a pipeline wrote it (a stale token's writes are refused)
    fence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
