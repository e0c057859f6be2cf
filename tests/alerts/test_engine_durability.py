"""AlertEngine when the database misbehaves: nothing accepted is lost silently, nothing wedges it.

Failures are real: the rules table is renamed away (the database answers "no such table", as it does
while PostgreSQL restarts or a migration runs), a webhook is deleted under cached rules (a real foreign
key violation), a payload value json cannot encode (a numpy float32 score).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, text, update

from app.alerts.engine import AlertEngine
from app.metrics import ALERTS_DROPPED
from app.models import AlertRule, Webhook
from tests.alerts.conftest import FakeClock, Sessionmaker, add_rule, add_webhook, alerts, event, migrated
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Sessionmaker]:
    """The outbox on SQLite, then on the session's PostgreSQL emptied for this test."""
    sm = await migrated(store_url)
    async with sm.begin() as s:
        for table in ("alerts", "alert_rules", "webhooks"):
            await s.execute(text(f"DELETE FROM {table}"))
    yield sm
    await sm.kw["bind"].dispose()


@pytest.fixture
def spill(tmp_path: Path) -> Path:
    return tmp_path / "spill"


def durable_engine(sm: Sessionmaker, spill: Path, **kw: object) -> AlertEngine:
    return AlertEngine(sm, spill_dir=spill, retry_initial_s=0.01, clock=FakeClock(), **kw)  # type: ignore[arg-type]


@asynccontextmanager
async def rules_table_away(sm: Sessionmaker) -> AsyncIterator[None]:
    """The rules table is gone until the block ends: every read of it fails as a transient error."""
    async with sm.begin() as s:
        await s.execute(text("ALTER TABLE alert_rules RENAME TO alert_rules_away"))
    try:
        yield
    finally:
        async with sm.begin() as s:
            await s.execute(text("ALTER TABLE alert_rules_away RENAME TO alert_rules"))


def dropped(reason: str) -> float:
    return ALERTS_DROPPED.labels(reason=reason)._value.get()


def spilled(spill: Path, pattern: str) -> list[Path]:
    return list(spill.glob(f"{pattern}.jsonl"))


def files(spill: Path, prefix: str) -> Iterator[dict[str, object]]:
    for path in sorted(spill.glob(f"{prefix}-*.jsonl")):
        for line in path.read_text().splitlines():
            yield json.loads(line)


class TestDatabaseUnavailable:
    async def test_rules_unreadable_for_a_while_the_alert_is_created_once_it_answers(
        self, store: Sessionmaker, spill: Path, receiver: WebhookReceiver
    ) -> None:
        # given: a rule, and an engine that has not read it yet
        await add_rule(store, [await add_webhook(store, receiver)])
        async with durable_engine(store, spill) as engine:
            e = event(camera_id=1)
            async with rules_table_away(store):
                # when: the event arrives while the rules cannot be read
                await engine.consider(e)
                await eventually(lambda: engine.stats()["retries"] >= 2, 5, interval=0.01)
                assert await alerts(store) == []
            # then: the batch was kept and handled once the database answered
            await engine.idle()
        rows = await alerts(store)
        assert [r.event_id for r in rows] == [e.id]
        assert engine.stats()["rejected"] == 0 and not spilled(spill, "*")

    async def test_shutdown_with_the_database_down_spills_and_the_next_start_alerts(
        self, db: Sessionmaker, spill: Path, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)], dedup_window_s=0)
        held = [event(camera_id=i) for i in range(3)]
        async with rules_table_away(db):
            engine = durable_engine(db, spill, stop_timeout_s=0.2)
            async with asyncio.timeout(5):  # stopping never waits on the database
                async with engine:
                    for e in held:
                        await engine.consider(e)
                    await eventually(lambda: engine.stats()["retries"] >= 1, 5, interval=0.01)
        assert engine.stats()["spilled"] == 3
        assert {r["id"] for r in files(spill, "alert-pending")} == {e.id for e in held}
        # the next start considers them
        async with durable_engine(db, spill) as again:
            await again.idle()
        assert sorted(r.event_id for r in await alerts(db)) == sorted(e.id for e in held)
        assert again.stats()["replayed"] == 3 and not spilled(spill, "alert-pending-*")


class TestRejectedWrites:
    async def test_webhook_deleted_under_cached_rules_drops_that_row_and_keeps_alerting(
        self, store: Sessionmaker, spill: Path, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
    ) -> None:
        # given: rules cached with webhook 1
        one = await add_webhook(store, receiver, "one")
        two = await add_webhook(store, receiver, "two")
        rule = await add_rule(store, [one], dedup_window_s=15)
        before = dropped("webhook_deleted")
        async with durable_engine(store, spill) as engine:
            await engine.consider(event(camera_id=1))
            await engine.idle()
            # when: the rule moves to webhook 2 and webhook 1 is deleted, unknown to the engine
            async with store.begin() as s:
                await s.execute(update(AlertRule).where(AlertRule.id == rule).values(webhook_ids=[two]))
                await s.execute(delete(Webhook).where(Webhook.id == one))
            lost = event(camera_id=2)
            await engine.consider(lost)
            await engine.idle()  # returns: the engine is not wedged retrying
            # then: the row for the deleted webhook is dropped, logged and counted
            assert engine.stats()["dropped"] == 1
            assert dropped("webhook_deleted") == before + 1
            assert any(
                "dropped: webhook" in r.getMessage() and lost.id in r.getMessage() for r in caplog.records
            )
            # and later events alert through the rule as it is now, the same camera+type included
            later = [event(camera_id=2), event(camera_id=3)]
            for e in later:
                await engine.consider(e)
            await engine.idle()
        rows = await alerts(store)
        assert sorted((r.event_id, r.webhook_id) for r in rows) == sorted((e.id, two) for e in later)

    async def test_unencodable_payload_goes_to_a_rejected_file_and_the_rest_is_written(
        self, db: Sessionmaker, spill: Path, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)])
        bad = event(camera_id=1, score=np.float32(0.9))  # json cannot encode a numpy float32
        good = event(camera_id=2, score=0.5)
        before = dropped("rejected")
        async with durable_engine(db, spill) as engine:
            await engine.consider(bad)
            await engine.consider(good)  # same batch as `bad`
            await engine.idle()
            assert [r.event_id for r in await alerts(db)] == [good.id]
            # then: the bad row is kept for a human, counted, and the engine goes on
            kept = list(files(spill, "alerts-rejected"))
            assert [r["event_id"] for r in kept] == [bad.id] and "JSON" in str(kept[0]["error"])
            assert engine.stats()["rejected"] == 1 and dropped("rejected") == before + 1
            after = event(camera_id=1)  # the same camera+type: the failed window swallows nothing
            await engine.consider(after)
            await engine.idle()
        assert {r.event_id for r in await alerts(db)} == {good.id, after.id}


@pytest.fixture(autouse=True)
def _alert_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="argus.alerts")
