"""Recording: one continuous-recording segment (an MP4 file under DATA_DIR, path relative to it).

`complete` is False while the segment is written (or if Argus died writing it: the next start finishes or
discards it, see app/recording/segments.py). Rows go with their camera (ON DELETE CASCADE); files are
removed by the recorder's purge.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_camera_started", "camera_id", "started_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False)
    path: Mapped[str] = mapped_column(String(1024), unique=True, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    complete: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
