"""Packet-first streams: per-camera decode policy, RTSP transport, clip pre/post-roll, recording mode.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite does it in place): a batch rebuild would drop the table's AUTOINCREMENT
    op.add_column("cameras", sa.Column("decode", sa.String(16), server_default="gated", nullable=False))
    op.add_column("cameras", sa.Column("rtsp_transport", sa.String(8), server_default="tcp", nullable=False))
    op.add_column("cameras", sa.Column("pre_roll_s", sa.Float(), server_default="5", nullable=False))
    op.add_column("cameras", sa.Column("post_roll_s", sa.Float(), server_default="5", nullable=False))
    op.add_column("cameras", sa.Column("record", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("cameras", table_kwargs={"sqlite_autoincrement": True}) as batch:
        for name in ("record", "post_roll_s", "pre_roll_s", "rtsp_transport", "decode"):
            batch.drop_column(name)
