"""CameraLease: which node runs a camera until when, and the fencing token of that ownership."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime


class CameraLease(Base):
    __tablename__ = "camera_leases"

    camera_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    node: Mapped[str | None] = mapped_column(String(255), nullable=True)  # None: free
    # +1 on every acquisition, never reset: a write carrying an older token comes from a former owner
    token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)  # the database's clock
    move_to: Mapped[str | None] = mapped_column(String(255), nullable=True)  # POST /api/cameras/{id}/move
