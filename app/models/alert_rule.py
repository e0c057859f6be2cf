"""AlertRule: which events (cameras, types, minimum severity) alert which webhooks, with a dedup window."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class AlertRule(TimestampMixin, Base):
    __tablename__ = "alert_rules"
    # SQLite would otherwise hand a deleted row's id to the next insert (see migration 0003)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    camera_ids: Mapped[list[int]] = mapped_column(JSON, default=list, nullable=False)  # empty = all
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)  # empty = all
    min_severity: Mapped[str] = mapped_column(String(16), default="high", nullable=False)
    webhook_ids: Mapped[list[int]] = mapped_column(JSON, default=list, nullable=False)
    dedup_window_s: Mapped[float] = mapped_column(Float, default=15.0, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
