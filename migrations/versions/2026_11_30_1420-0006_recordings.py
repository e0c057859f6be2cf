"""Continuous recordings: one row per MP4 segment.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name=op.f("fk_recordings_camera_id_cameras"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("path", name=op.f("uq_recordings_path")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_recordings_camera_started", "recordings", ["camera_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_recordings_camera_started", table_name="recordings")
    op.drop_table("recordings")
