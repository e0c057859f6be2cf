"""VLM descriptions by `argus worker vlm` processes fed from the Redis stream, against the fake
OpenAI-compatible server, the real Redis and a PostgreSQL database of its own. A worker killed (-9)
mid-job: a second worker reclaims the job and completes it; one description is stored."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from app.cluster.keys import Keys
from app.cluster.vlm_jobs import GROUP, VlmJobQueue, VlmWorker
from app.events.bus import EventBus
from app.events.repository import EventRepository
from app.events.snapshots import write_snapshot
from app.events.types import NewEvent, Severity, utcnow
from app.integrations.vlm import VlmDescriber
from app.kit.db import create_engine, create_sessionmaker
from app.migrate import upgrade
from app.models import Event
from tests.support.fake_vlm import FakeVlm
from tests.support.services import fresh_postgres_database
from tests.support.waiting import eventually

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
ANSWER = '{"description": "A person climbs the fence.", "severity": "high"}'


@pytest.fixture(scope="module")
def vlm_db() -> Iterator[str]:
    with fresh_postgres_database() as url:
        with ThreadPoolExecutor(1) as ex:  # Alembic's env runs its own event loop
            ex.submit(upgrade, url).result()
        yield url


@pytest.fixture
async def fake() -> AsyncIterator[FakeVlm]:
    server = await FakeVlm(answer=ANSWER).start()
    yield server
    await server.stop()


class Setup:
    def __init__(self, db_url: str, data_dir: Path, fake: FakeVlm, redis: Redis, keys: Keys) -> None:
        self.engine = create_engine(db_url)
        self.sessionmaker = create_sessionmaker(self.engine)
        self.data_dir = data_dir
        self.describer = VlmDescriber(EventBus(), base_url=fake.base_url, model="llava", data_dir=data_dir)
        self.queue = VlmJobQueue(redis, self.describer, keys=keys)

    async def stored_event(self) -> NewEvent:
        """An event the node's logger has stored, with its snapshot on the node's disk."""
        event = NewEvent(camera_id=None, type="object", severity=Severity.medium, started_at=utcnow())
        image = np.full((48, 64, 3), 90, np.uint8)
        event = event.evolve(snapshot_path=write_snapshot(self.data_dir, event.id, 0, image))
        async with self.sessionmaker.begin() as session:
            await EventRepository(session).insert_missing([event.to_row()])
        return event

    async def row(self, event_id: str) -> Event | None:
        async with self.sessionmaker() as session:
            return await session.get(Event, event_id)


@pytest.fixture
async def setup(vlm_db: str, tmp_path: Path, fake: FakeVlm, redis: Redis, keys: Keys) -> AsyncIterator[Setup]:
    made = Setup(vlm_db, tmp_path / "data", fake, redis, keys)
    yield made
    await made.engine.dispose()


async def test_a_job_is_described_stored_announced_and_acknowledged_once(
    setup: Setup, redis: Redis, keys: Keys, fake: FakeVlm
) -> None:
    event = await setup.stored_event()
    async with VlmWorker(redis, setup.sessionmaker, setup.describer, name="w", keys=keys) as worker:
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(keys.events)
            await setup.queue.submit(event)
            assert await worker.step() == 1
            announced = await eventually(lambda: pubsub.get_message(ignore_subscribe_messages=True), 5)
        row = await setup.row(event.id)
        assert row is not None and row.description == "A person climbs the fence."
        assert row.severity == "high" and row.data["vlm"]["worker"] == "w"  # raised by the verdict
        body = json.loads(announced["data"])
        assert body["event"]["id"] == event.id and body["event"]["description"] == row.description
        assert await worker.pending() == 0 and await redis.exists(keys.vlm_image(event.id)) == 0

        await setup.queue.submit(event)  # the same job again (say, a worker died before its XACK)
        assert await worker.step() == 1
        assert worker.outcomes == {"ok": 1, "already_described": 1} and len(fake.requests) == 1


def worker_process_env(db_url: str, fake: FakeVlm, redis_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env.update(
        ARGUS_DATABASE_URL=db_url,
        ARGUS_REDIS_URL=redis_url,
        ARGUS_VLM_BASE_URL=fake.base_url,
        ARGUS_VLM_TIMEOUT_S="60",
        ARGUS_DATA_DIR=str(data_dir),
        ARGUS_NODE_NAME="test",
    )
    return env


async def start_worker(name: str, env: dict[str, str], keys: Keys, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "worker", "vlm", "--name", name, "--reclaim-idle", "1",
            "--key-prefix", keys.prefix, env=env, stdout=out, stderr=out,
        )  # fmt: skip


async def test_a_killed_workers_job_is_reclaimed_and_completed_by_another(
    setup: Setup, vlm_db: str, redis: Redis, redis_url: str, keys: Keys, fake: FakeVlm, tmp_path: Path
) -> None:
    fake.gate = asyncio.Event()  # the model holds every answer until the gate opens
    env = worker_process_env(vlm_db, fake, redis_url, tmp_path / "worker-data")
    log = tmp_path / "workers.log"
    event = await setup.stored_event()
    await setup.queue.submit(event)
    first = await start_worker("w1", env, keys, log)
    second: asyncio.subprocess.Process | None = None
    try:
        await asyncio.wait_for(fake.received.wait(), 60)  # w1 took the job and asked the model
        first.kill()  # -9, mid-job
        await first.wait()
        info = await redis.xpending(keys.vlm_stream, GROUP)
        assert info["pending"] == 1  # delivered to w1, never acknowledged
        fake.gate.set()
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(keys.events)
            second = await start_worker("w2", env, keys, log)

            async def described() -> Event | None:
                row = await setup.row(event.id)
                return row if row is not None and "vlm" in row.data else None

            row = await eventually(described, 60, interval=0.2, what=lambda: log.read_text()[-3000:])
            await eventually(lambda: _no_pending(redis, keys), 30, interval=0.2)
            announcements = await _messages(pubsub, 1.0)
        assert row.description == "A person climbs the fence." and row.data["vlm"]["worker"] == "w2"
        assert len(fake.requests) == 2  # w1's answer never arrived; w2 asked again
        assert [a["event"]["id"] for a in announcements] == [event.id]  # stored and announced once
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()


async def _no_pending(redis: Redis, keys: Keys) -> bool:
    return (await redis.xpending(keys.vlm_stream, GROUP))["pending"] == 0


async def _messages(pubsub: PubSub, quiet_s: float) -> list[dict[str, Any]]:
    """Every message until none came for `quiet_s` (the subscription's own confirmation skipped)."""
    got = []
    while True:
        try:
            message = await asyncio.wait_for(
                pubsub.get_message(ignore_subscribe_messages=True, timeout=None), quiet_s
            )
        except TimeoutError:
            return got
        if message is not None:
            got.append(json.loads(message["data"]))
