"""Several nodes: node heartbeats, camera leases with fencing tokens, pinned cameras, fenced events.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("capacity", sa.Float(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("load", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_nodes")),
    )
    op.create_table(
        "camera_leases",
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(255), nullable=True),
        sa.Column("token", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("move_to", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("camera_id", name=op.f("pk_camera_leases")),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name=op.f("fk_camera_leases_camera_id_cameras"), ondelete="CASCADE"
        ),
    )
    with op.batch_alter_table("cameras") as batch:
        batch.add_column(sa.Column("pinned_node", sa.String(255), nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("fence", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("fence")
    with op.batch_alter_table("cameras") as batch:
        batch.drop_column("pinned_node")
    op.drop_table("camera_leases")
    op.drop_table("nodes")
