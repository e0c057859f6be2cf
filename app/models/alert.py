"""Alert: the outbox. One row per alert per webhook, committed before any delivery attempt.

`claimed_until` is the dispatcher's lease: a row claimed by a process that died is claimable again
once the lease expires. `digest_id` groups medium/low rows sent together as one digest POST, so a
retried digest keeps its Idempotency-Key.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin, UTCDateTime


class AlertStatus(StrEnum):
    pending = "pending"
    retrying = "retrying"
    delivered = "delivered"
    dead = "dead"


class AlertPriority(StrEnum):
    immediate = "immediate"  # critical/high: sent at once
    digest = "digest"  # medium/low: gathered per webhook, one POST every digest interval


class Alert(TimestampMixin, Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_due", "status", "next_attempt_at"),
        Index("ix_alerts_created_at_id", "created_at", "id"),
        Index("ix_alerts_webhook_id", "webhook_id"),
        Index("ix_alerts_camera_id", "camera_id"),
        Index("ix_alerts_event_id", "event_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid hex; the Idempotency-Key
    rule_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # survives rule deletion
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False)
    camera_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    priority: Mapped[str] = mapped_column(String(16), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    suppressed_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.pending, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)  # dead after this
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    digest_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
