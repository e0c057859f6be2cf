"""Events in the order they changed: the event stream and edge forwarding read them by this index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 15:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_updated_at_id", "events", ["updated_at", "started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_updated_at_id", table_name="events")
