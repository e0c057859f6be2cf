"""The one queue between the bus and the alert engine: offer() never blocks, a full queue overflows to a
file that is considered once the queue has drained, and nothing offered is lost (nor after a stop)."""

from __future__ import annotations

from pathlib import Path

from app.alerts.engine import MAX_BATCH, AlertEngine
from app.events.bus import EventBus
from tests.alerts.conftest import FakeClock, Sessionmaker, add_rule, add_webhook, alerts, event
from tests.support.webhook_receiver import WebhookReceiver


def files(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(f"{pattern}.jsonl"))


async def test_a_storm_past_the_queue_overflows_and_every_event_alerts(
    db: Sessionmaker, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    await add_rule(db, [await add_webhook(db, receiver)], dedup_window_s=0)
    storm = [event(camera_id=i % 4) for i in range(MAX_BATCH + 40)]
    bus = EventBus()
    async with AlertEngine(db, queue_size=2, spill_dir=tmp_path, clock=FakeClock()) as engine:
        bus.subscribe("alerts", engine.offer, direct=True)
        for e in storm:  # in one go: the engine cannot take any of them meanwhile
            bus.publish(e)
        assert engine.stats()["overflowed"] == MAX_BATCH  # one file; the rest waits in memory
        await engine.idle()
    await bus.close()
    assert sorted(r.event_id for r in await alerts(db)) == sorted(e.id for e in storm)
    assert bus.stats()["alerts"]["failed"] == 0
    assert not files(tmp_path, "alert-*")  # replayed, then removed


async def test_an_event_offered_after_the_stop_alerts_at_the_next_start(
    db: Sessionmaker, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    await add_rule(db, [await add_webhook(db, receiver)], dedup_window_s=0)
    engine = AlertEngine(db, spill_dir=tmp_path, clock=FakeClock())
    async with engine:
        pass
    late = event(camera_id=1)
    engine.offer(late)  # a publisher that had not stopped yet
    assert len(files(tmp_path, "alert-pending-*")) == 1
    async with AlertEngine(db, spill_dir=tmp_path, clock=FakeClock()) as again:
        await again.idle()
    assert [r.event_id for r in await alerts(db)] == [late.id]
