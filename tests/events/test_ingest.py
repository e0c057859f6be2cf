"""POST /api/events is durable: 202 only once the row is committed, requests arriving together share a
commit, and a database that cannot store (a really corrupted SQLite file) gives 503 and a degraded health."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.events.repository import EventRepository
from app.events.types import NewEvent, utcnow
from app.kit.severity import Severity
from app.main import create_app
from app.migrate import upgrade
from tests.conftest import AUTH, make_settings
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client:
            yield app, client


def corrupt_table(db: Path, table: str) -> None:
    """Overwrite the root page of `table` with garbage: the file still opens and answers SELECT 1 (the
    server starts), but every write to that table fails with "database disk image is malformed"."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    with db.open("r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xa5" * page_size)


class TestIngestIsDurable:
    async def test_202_means_the_event_can_be_read_back_at_once(
        self, api: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        _, client = api
        r = await client.post("/api/events", json={"type": "door", "severity": "high"})
        assert r.status_code == 202, r.text
        # no logger flush to wait for: the row is committed before the answer
        got = await client.get(f"/api/events/{r.json()['id']}")
        assert got.status_code == 200 and got.json()["type"] == "door"

    async def test_requests_arriving_together_share_commits(
        self, api: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        app, client = api
        ingest = app.state.runtime.ingest
        commits_before = ingest.commits
        answers = await asyncio.gather(
            *(client.post("/api/events", json={"type": f"t{i}", "severity": "low"}) for i in range(60))
        )
        assert [a.status_code for a in answers] == [202] * 60
        ids = {a.json()["id"] for a in answers}
        page = (await client.get("/api/events", params={"limit": 100})).json()["items"]
        assert ids <= {e["id"] for e in page}
        assert ingest.commits - commits_before < 60  # some shared a transaction

    async def test_202_comes_with_the_alerts_of_the_event_in_the_outbox(
        self, api: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        _, client = api
        with WebhookReceiver() as receiver:
            hook = await client.post(
                "/api/webhooks", json={"name": "r", "url": receiver.url, "secret": receiver.secret}
            )
            rule = {"name": "doors", "webhook_ids": [hook.json()["id"]], "event_types": ["door"]}
            assert (await client.post("/api/alert-rules", json=rule)).status_code == 201
            r = await client.post("/api/events", json={"type": "door", "severity": "high"})
            assert r.status_code == 202
            # decided and committed before the answer: a crash now could not lose the alert
            alerts = (await client.get("/api/alerts")).json()["items"]
            assert [a["event_id"] for a in alerts] == [r.json()["id"]]

    async def test_the_event_reaches_the_bus_only_after_it_is_stored(
        self, api: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        app, client = api
        rt = app.state.runtime
        seen: list[bool] = []

        async def stored_when_published(event: NewEvent) -> None:
            async with rt.sessionmaker() as session:
                seen.append(await EventRepository(session).get(event.id) is not None)

        rt.bus.subscribe("probe", stored_when_published)
        r = await client.post("/api/events", json={"type": "door", "severity": "high"})
        assert r.status_code == 202
        await rt.bus.drain()
        assert seen == [True]
        assert rt.bus.stats()["event_logger"]["delivered"] == 0  # stored already: not written twice


class TestDatabaseThatCannotStore:
    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        # given a real SQLite file whose events table is corrupt (the rest of the file is fine)
        settings = make_settings(tmp_path / "data", event_flush_interval_s=0.05)
        settings.data_dir.mkdir(parents=True)
        upgrade(settings.database_url)
        corrupt_table(settings.data_dir / "argus.db", "events")
        return settings

    async def test_ingest_answers_503_and_health_says_degraded_with_the_reason(
        self, api: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        _, client = api
        assert (await client.get("/api/health")).json()["status"] == "ok"  # nothing written yet
        r = await client.post("/api/events", json={"type": "door", "severity": "high"})
        assert r.status_code == 503, r.text
        assert "malformed" in r.json()["detail"]
        health = (await client.get("/api/health")).json()
        assert health["status"] == "degraded"
        assert any("ingest failing" in reason and "malformed" in reason for reason in health["reasons"])

    async def test_camera_events_that_cannot_be_written_make_health_degraded(
        self, api: tuple[FastAPI, httpx.AsyncClient]
    ) -> None:
        app, client = api
        rt = app.state.runtime
        rt.bus.publish(NewEvent(camera_id=None, type="anomaly", severity=Severity.high, started_at=utcnow()))

        async def degraded() -> bool:
            body = (await client.get("/api/health")).json()
            return any("event writes failing" in reason for reason in body.get("reasons", []))

        await eventually(degraded, timeout=10)
        # kept to be written later (buffer, then spill file), never set aside as a "rejected" row
        assert rt.event_logger.stats()["rejected"] == 0
