"""SQLite: AUTOINCREMENT on cameras, alert_rules, webhooks so a deleted row's id is never handed out again.

Without it SQLite gives the next insert max(id) + 1, so deleting the newest camera and adding another
one reuses its id: the old camera's events, snapshots and `camera_ids: [n]` alert rules then point at
the new camera. PostgreSQL sequences never reuse ids: nothing to do there.

SQLite cannot add AUTOINCREMENT in place, so each table is rebuilt (copy, drop, rename) with its rows
and ids. Dropping `webhooks` while `PRAGMA foreign_keys` is on would run an implicit DELETE that
cascades into the `alerts` outbox, so foreign keys are switched off for the rebuild (Alembic's batch
mode requires this) and checked afterwards.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:00:00
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("cameras", "alert_rules", "webhooks")

# Ids still referenced after their row was deleted (these columns survive deletion by design): the
# sequence starts above them, so even the newest deleted id is not reused once after the upgrade.
REFERENCES = {
    "cameras": (
        "SELECT max(camera_id) FROM events",
        "SELECT max(camera_id) FROM alerts",
        "SELECT max(CAST(j.value AS INTEGER)) FROM alert_rules, json_each(alert_rules.camera_ids) AS j",
    ),
    "alert_rules": ("SELECT max(rule_id) FROM alerts",),
    "webhooks": (
        "SELECT max(webhook_id) FROM alerts",
        "SELECT max(CAST(j.value AS INTEGER)) FROM alert_rules, json_each(alert_rules.webhook_ids) AS j",
    ),
}


def _foreign_keys_off(conn: Connection) -> bool:
    """Turn foreign keys off for the rebuild; True when they were on (to turn them back on after)."""
    if not conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
        return False
    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    # The pragma is a no-op inside an open SQLite transaction (earlier revisions of this same run wrote
    # rows). That is safe only while the outbox is empty: otherwise dropping webhooks would cascade.
    still_on = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
    if still_on and conn.exec_driver_sql("SELECT count(*) FROM alerts").scalar():
        raise RuntimeError("0003 needs PRAGMA foreign_keys=OFF; run `argus migrate` to 0002, then to head")
    return True


def _rebuild(autoincrement: bool) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    restore = _foreign_keys_off(conn)
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
    if autoincrement:
        _seed_sequences(conn)
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"0003 left dangling foreign keys: {broken[:5]}")
    if restore:  # a no-op while the copy is uncommitted; Alembic closes this connection after the run
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def _seed_sequences(conn: Connection) -> None:
    for table, queries in REFERENCES.items():
        seen = [conn.exec_driver_sql(q).scalar() for q in queries]
        floor = max((int(v) for v in seen if v is not None), default=0)
        if floor <= 0:
            continue
        row = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).first()
        if row is None:
            conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, floor))
        elif row[0] < floor:
            conn.exec_driver_sql("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (floor, table))


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
