"""Camera: a stream Argus watches. `url` keeps the password for connecting; responses mask it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class Camera(TimestampMixin, Base):
    __tablename__ = "cameras"
    # SQLite would otherwise hand a deleted row's id to the next insert (see migration 0003)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    analysis_fps: Mapped[float] = mapped_column(Float, default=5.0, nullable=False)
    drop_policy: Mapped[str] = mapped_column(String(32), default="latest", nullable=False)
    drop_every_n: Mapped[int] = mapped_column(Integer, default=3, nullable=False)
    vad: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    # Extra analyzers beyond VAD: [{"name": "detector", "options": {...}}, ...]
    analyzers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, nullable=False)
    # Packet-first stream layer (migration 0004): what to decode, how to connect, what video to keep
    decode: Mapped[str] = mapped_column(String(16), default="gated", server_default="gated", nullable=False)
    rtsp_transport: Mapped[str] = mapped_column(
        String(8), default="tcp", server_default="tcp", nullable=False
    )
    pre_roll_s: Mapped[float] = mapped_column(Float, default=5.0, server_default="5", nullable=False)
    post_roll_s: Mapped[float] = mapped_column(Float, default=5.0, server_default="5", nullable=False)
    # {"mode": "off" | "events" | "continuous", "retain_days": int}
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    # cluster mode: only this node may run the camera (migration 0009); None: any node
    pinned_node: Mapped[str | None] = mapped_column(String(255), nullable=True)
