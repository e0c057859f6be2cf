"""Webhook: a receiver of signed alert POSTs. The secret signs bodies and is never returned by the API."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class Webhook(TimestampMixin, Base):
    __tablename__ = "webhooks"
    # SQLite would otherwise hand a deleted row's id to the next insert (see migration 0003)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    secret: Mapped[str] = mapped_column(String(256), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    timeout_s: Mapped[float] = mapped_column(Float, default=5.0, nullable=False)
