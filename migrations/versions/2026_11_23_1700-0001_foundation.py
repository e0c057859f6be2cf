"""Foundation: cameras, events, api_keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "cameras",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("analysis_fps", sa.Float(), nullable=False),
        sa.Column("drop_policy", sa.String(32), nullable=False),
        sa.Column("drop_every_n", sa.Integer(), nullable=False),
        sa.Column("vad", sa.JSON(), nullable=False),
        sa.Column("analyzers", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cameras")),
        sa.UniqueConstraint("name", name=op.f("uq_cameras_name")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("snapshot_path", sa.String(1024), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_type", "events", ["type"])
    op.create_index("ix_events_severity", "events", ["severity"])
    op.create_index("ix_events_started_at_id", "events", ["started_at", "id"])
    op.create_index("ix_events_camera_started", "events", ["camera_id", "started_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_events_camera_started", table_name="events")
    op.drop_index("ix_events_started_at_id", table_name="events")
    op.drop_index("ix_events_severity", table_name="events")
    op.drop_index("ix_events_type", table_name="events")
    op.drop_table("events")
    op.drop_table("cameras")
