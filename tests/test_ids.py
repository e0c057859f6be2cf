"""Ids of cameras, webhooks and alert rules are never reused after a delete (SQLite AUTOINCREMENT;
PostgreSQL sequences), and migration 0003 keeps existing rows, their ids and the alerts outbox."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from app.migrate import downgrade, upgrade

# Not connectable on purpose: cameras are created disabled so no pipeline ever starts.
CAMERA_URL = "rtsp://127.0.0.1:9/none"
HOOK_URL = "http://127.0.0.1:9/hook"
NOW = "2026-11-23 12:00:00"


async def create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> int:
    r = await client.post(path, json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def delete(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.delete(path)).status_code == 204


def camera(name: str) -> dict[str, Any]:
    return {"name": name, "url": CAMERA_URL, "enabled": False}


def hook(name: str) -> dict[str, Any]:
    return {"name": name, "url": HOOK_URL, "secret": "s3cret-s3cret"}


class TestIdsAreNotReused:
    async def test_camera_id_after_delete(self, api_client: httpx.AsyncClient) -> None:
        first = await create(api_client, "/api/cameras", camera("gate"))
        await delete(api_client, f"/api/cameras/{first}")
        second = await create(api_client, "/api/cameras", camera("gate"))
        assert second != first and second > first

    async def test_deleted_camera_in_a_rule_never_matches_a_new_camera(
        self, api_client: httpx.AsyncClient
    ) -> None:
        cam = await create(api_client, "/api/cameras", camera("yard"))
        hook_id = await create(api_client, "/api/webhooks", hook("pager"))
        rule = {"name": "yard only", "camera_ids": [cam], "webhook_ids": [hook_id]}
        rule_id = await create(api_client, "/api/alert-rules", rule)
        await delete(api_client, f"/api/cameras/{cam}")
        new_cam = await create(api_client, "/api/cameras", camera("street"))
        kept = (await api_client.get(f"/api/alert-rules/{rule_id}")).json()
        assert kept["camera_ids"] == [cam] and new_cam not in kept["camera_ids"]

    async def test_webhook_id_after_delete(self, api_client: httpx.AsyncClient) -> None:
        first = await create(api_client, "/api/webhooks", hook("pager"))
        await delete(api_client, f"/api/webhooks/{first}")
        second = await create(api_client, "/api/webhooks", hook("pager"))
        assert second != first and second > first

    async def test_alert_rule_id_after_delete(self, api_client: httpx.AsyncClient) -> None:
        hook_id = await create(api_client, "/api/webhooks", hook("pager"))
        rule = {"name": "all high", "webhook_ids": [hook_id]}
        first = await create(api_client, "/api/alert-rules", rule)
        await delete(api_client, f"/api/alert-rules/{first}")
        second = await create(api_client, "/api/alert-rules", rule)
        assert second != first and second > first


def seed_0002(db: Path) -> None:
    """Rows as a 0002 database holds them: gaps from deletes, a rule naming a deleted camera (7), and
    an outbox row for a webhook (the rebuild must not cascade it away) and for a deleted rule (9)."""
    with sqlite3.connect(db) as c:
        for cid, name in ((1, "a"), (3, "b")):
            c.execute(
                "INSERT INTO cameras VALUES (?, ?, ?, 1, 5.0, 'latest', 3, '{}', '[]', ?, ?)",
                (cid, name, CAMERA_URL, NOW, NOW),
            )
        c.execute(
            "INSERT INTO webhooks VALUES (2, 'w', ?, 's3cret-s3cret', 1, 5.0, ?, ?)", (HOOK_URL, NOW, NOW)
        )
        c.execute(
            "INSERT INTO alert_rules VALUES (4, 'r', '[1, 7]', '[]', 'high', '[2]', 15, 1, ?, ?)", (NOW, NOW)
        )
        c.execute(
            "INSERT INTO alerts (id, rule_id, webhook_id, event_id, camera_id, event_type, severity,"
            " priority, payload, suppressed_count, status, attempts, next_attempt_at, expires_at,"
            " created_at, updated_at)"
            " VALUES ('a1', 9, 2, 'e1', 1, 'vad', 'high', 'immediate', '{}', 0, 'pending', 0, ?, ?, ?, ?)",
            (NOW, NOW, NOW, NOW),
        )


def dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as c:
        return {
            t: c.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()  # fixed table names
            for t in ("cameras", "webhooks", "alert_rules", "alerts")
        }


def table_sql(db: Path, table: str) -> str:
    with sqlite3.connect(db) as c:
        return str(c.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0])


class TestMigration0003:
    async def test_upgrade_keeps_rows_and_ids_and_adds_autoincrement(self, tmp_path: Path) -> None:
        db = tmp_path / "old.db"
        url = f"sqlite+aiosqlite:///{db}"
        await asyncio.to_thread(upgrade, url, "0002")  # Alembic's env runs its own event loop
        seed_0002(db)
        before = dump(db)

        await asyncio.to_thread(upgrade, url, "0003")
        assert dump(db) == before
        await asyncio.to_thread(upgrade, url)  # and later migrations keep it
        for table in ("cameras", "webhooks", "alert_rules"):
            assert "AUTOINCREMENT" in table_sql(db, table), table
        assert "REFERENCES webhooks" in table_sql(db, "alerts")
        with sqlite3.connect(db) as c:
            assert c.execute("PRAGMA foreign_key_check").fetchall() == []
            seq = dict(c.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
            # above every id still referenced somewhere: camera 7 (rule), rule 9 (outbox)
            assert seq == {"cameras": 7, "webhooks": 2, "alert_rules": 9}
            c.execute("PRAGMA foreign_keys=ON")
            c.execute("DELETE FROM cameras WHERE id = 3")
            c.execute(
                "INSERT INTO cameras (name, url, enabled, analysis_fps, drop_policy, drop_every_n, vad,"
                " analyzers, created_at, updated_at) VALUES ('c', ?, 1, 5, 'latest', 3, '{}', '[]', ?, ?)",
                (CAMERA_URL, NOW, NOW),
            )
            assert c.execute("SELECT max(id) FROM cameras").fetchone() == (8,)
            c.execute("DELETE FROM webhooks WHERE id = 2")  # the foreign key still cascades
            assert c.execute("SELECT count(*) FROM alerts").fetchone() == (0,)

    async def test_downgrade_drops_autoincrement_and_keeps_rows(self, tmp_path: Path) -> None:
        db = tmp_path / "old.db"
        url = f"sqlite+aiosqlite:///{db}"
        await asyncio.to_thread(upgrade, url, "0002")
        seed_0002(db)
        before = dump(db)
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(downgrade, url, "0002")
        assert dump(db) == before
        for table in ("cameras", "webhooks", "alert_rules"):
            assert "AUTOINCREMENT" not in table_sql(db, table), table
