"""Event clips: the clip's first part path and its number of parts on each event.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("clip_path", sa.String(1024), nullable=True))
        batch.add_column(sa.Column("clip_parts", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("clip_parts")
        batch.drop_column("clip_path")
