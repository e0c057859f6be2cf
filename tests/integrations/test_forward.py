"""Edge -> central forwarding on loopback: two Argus runtimes, the central one a real uvicorn server that
is stopped and started again while the edge's events flow; every event arrives once, in order per
camera, and alerts there once. The HTTP batch fallback. The central endpoints' refusals."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from sqlalchemy import select

from app.config import Settings
from app.events.snapshots import write_snapshot
from app.events.types import NewEvent, Phase
from app.integrations.forward import EdgeForwarder
from app.kit.backoff import Backoff
from app.kit.severity import Severity
from app.lifespan import Runtime
from app.main import create_app
from app.models import Event
from tests.conftest import API_KEY, AUTH, make_settings
from tests.support.server import free_port, wait_until_healthy
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]


class Central:
    """A central Argus on a fixed port that a test can stop and start again (same database)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.arrivals: list[NewEvent] = []  # what its bus saw, across restarts
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.rt: Runtime | None = None

    async def start(self) -> None:
        app = create_app(self.settings)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        server, task = self._server, asyncio.create_task(self._server.serve())
        self._task = task

        def started() -> bool:
            assert not task.done(), "central exited while starting"
            return bool(server.started)

        await eventually(started, 30, interval=0.02, what="central start")
        self.rt = app.state.runtime
        self.rt.bus.subscribe("probe", self.arrivals.append, direct=True)

    async def stop(self) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task
        self._server = None

    async def rows(self) -> list[Event]:
        assert self.rt is not None
        async with self.rt.sessionmaker() as session:
            return list((await session.execute(select(Event))).scalars())


@pytest.fixture
async def central(tmp_path: Path) -> AsyncIterator[Central]:
    c = Central(make_settings(tmp_path / "central", event_flush_interval_s=0.05))
    await c.start()
    yield c
    if c._server is not None:
        await c.stop()


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Runtime]:
    """An edge Argus runtime (its logger stores what its bus carries); the forwarder is added per test."""
    app = create_app(make_settings(tmp_path / "edge", event_flush_interval_s=0.05))
    async with app.router.lifespan_context(app):
        yield app.state.runtime


@dataclass
class Edge:
    rt: Runtime
    forwarder: EdgeForwarder
    raised: list[NewEvent] = field(default_factory=list)

    def raise_episode(self, camera_id: int, i: int) -> None:
        e = NewEvent(camera_id, "anomaly", Severity.high, datetime.now(UTC), score=1.0, data={"i": i})
        self.rt.bus.publish(e)
        self.rt.bus.publish(e.evolve(phase=Phase.close, ended_at=datetime.now(UTC)))
        self.raised.append(e)


@pytest.fixture
async def forwarding(
    edge: Runtime, central: Central, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Edge]:
    options: dict[str, Any] = getattr(request, "param", {})  # transport, media
    forwarder = EdgeForwarder(
        edge.sessionmaker,
        url=central.url,
        key=API_KEY,
        name="site-a",
        data_dir=tmp_path / "edge",
        **options,
        poll_s=0.1,
        backoff=Backoff(initial=0.05, cap=0.3),
        ack_timeout_s=5,
    )
    async with forwarder:
        edge.bus.subscribe("forward", forwarder.consider, direct=True)
        yield Edge(edge, forwarder)


async def add_alert_rule(central: Central, receiver: WebhookReceiver) -> None:
    async with httpx.AsyncClient(base_url=central.url, headers=AUTH) as client:
        body = {"name": "edge hook", "url": receiver.url, "secret": receiver.secret}
        hook = (await client.post("/api/webhooks", json=body)).json()
        rule = {"name": "all", "webhook_ids": [hook["id"]], "dedup_window_s": 0}
        assert (await client.post("/api/alert-rules", json=rule)).status_code == 201


def first_arrivals(arrivals: list[NewEvent]) -> list[tuple[int, int]]:
    """(edge camera, i) in the order the central side first saw each event."""
    seen: dict[str, tuple[int, int]] = {}
    for e in arrivals:
        seen.setdefault(e.id, (e.data["edge"]["camera_id"], e.data["i"]))
    return list(seen.values())


class TestWebSocket:
    async def test_a_central_outage_mid_burst_loses_nothing_duplicates_nothing_keeps_order(
        self, forwarding: Edge, central: Central
    ) -> None:
        with WebhookReceiver() as receiver:
            await add_alert_rule(central, receiver)
            # given: events flowing; then the central server stops while they keep coming; then returns
            for i in range(30):
                forwarding.raise_episode(1 + i % 2, i)
            await eventually(lambda: _count(central, 10), 30, what="first events at central")
            await central.stop()
            for i in range(30, 60):
                forwarding.raise_episode(1 + i % 2, i)
                await asyncio.sleep(0.02)
            await eventually(
                lambda: not forwarding.forwarder.connected and forwarding.forwarder.queued > 0, 30
            )
            assert forwarding.forwarder.stats()["last_error"]
            await central.start()
            for i in range(60, 90):
                forwarding.raise_episode(1 + i % 2, i)
            # then
            await eventually(
                lambda: _closed(central, 90), 30, what="every event stored and closed at central"
            )
            rows = await central.rows()
            assert len(rows) == 90 and {r.id for r in rows} == {e.id for e in forwarding.raised}
            assert all(r.source == "edge:site-a" and r.camera_id is None for r in rows)
            assert {r.data["edge"]["name"] for r in rows} == {"site-a"}
            order = first_arrivals(central.arrivals)
            for camera in (1, 2):
                assert [i for c, i in order if c == camera] == [i for i in range(90) if 1 + i % 2 == camera]
            await receiver.wait_until(lambda r: len(_alerted(r)) >= 90, timeout=20)
            alerted = _alerted(receiver)
            assert sorted(alerted) == sorted(e.id for e in forwarding.raised)  # each once
            assert forwarding.forwarder.stats()["reconnects"] >= 1


@pytest.mark.parametrize("forwarding", [{"transport": "http"}], indirect=True)
class TestHttpFallback:
    async def test_batches_arrive_gzipped_and_once(self, forwarding: Edge, central: Central) -> None:
        for i in range(250):
            forwarding.raise_episode(1, i)
        await eventually(lambda: _closed(central, 250), 30, what="every event at central")
        assert forwarding.forwarder.stats()["transport"] == "http"


@pytest.mark.parametrize(
    "forwarding", [{"media": "snapshots"}, {"media": "snapshots", "transport": "http"}], indirect=True
)
class TestSnapshots:
    async def test_the_jpeg_goes_along_and_the_central_side_serves_it(
        self, forwarding: Edge, central: Central, tmp_path: Path
    ) -> None:
        jpeg = b"\xff\xd8" + os.urandom(300_000) + b"\xff\xd9"  # big: frames are split by size
        events = []
        for i in range(4):
            e = NewEvent(1, "anomaly", Severity.high, datetime.now(UTC), data={"i": i})
            path = write_snapshot(tmp_path / "edge", e.id, 1, jpeg)
            events.append(e.evolve(snapshot_path=path))
        for e in events:
            forwarding.rt.bus.publish(e)
        await eventually(lambda: _count(central, 4), 30, what="events with snapshots at central")
        async with httpx.AsyncClient(base_url=central.url, headers=AUTH) as client:
            for e in events:
                r = await client.get(f"/api/events/{e.id}/snapshot.jpg")
                assert r.status_code == 200 and r.content == jpeg


class TestCentralEndpoints:
    async def test_batch_gzip_idempotent_and_refusals(self, central: Central) -> None:
        event = {"id": "e1", "camera_id": 3, "camera": "gate", "type": "anomaly", "severity": "high",
                 "started_at": "2026-11-30T14:00:00Z"}  # fmt: skip
        body = gzip.compress(json.dumps({"edge": "site-b", "events": [event]}).encode())
        headers = {**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=central.url) as client:
            for _ in range(2):  # the same batch twice: one row
                r = await client.post("/api/events:batch", content=body, headers=headers)
                assert r.status_code == 200 and r.json() == {"stored": 1, "rejected": 0}, r.text
            rows = await central.rows()
            assert len(rows) == 1 and rows[0].data["edge"] == {
                "name": "site-b",
                "camera_id": 3,
                "camera": "gate",
            }
            bad = await client.post("/api/events:batch", content=b"not gzip", headers=headers)
            assert bad.status_code == 422 and bad.json()["field"] == "body"
            many = {"edge": "site-b", "events": [event] * 1001}
            assert (await client.post("/api/events:batch", json=many, headers=AUTH)).status_code == 422
            assert (await client.post("/api/events:batch", json=many)).status_code == 401

    async def test_websocket_needs_a_key_and_a_hello(self, central: Central) -> None:
        ws_url = f"ws://127.0.0.1:{central.port}/ws/ingest"
        async with websockets.connect(ws_url) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        async with websockets.connect(ws_url, additional_headers=AUTH) as ws:
            await ws.send(json.dumps({"type": "hello", "edge": "bad name!"}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


def _alerted(receiver: WebhookReceiver) -> list[str]:
    return [r.json["event"]["id"] for r in receiver.delivered if r.json["type"] == "alert"]


async def _count(central: Central, n: int) -> bool:
    return len(await central.rows()) >= n


async def _closed(central: Central, n: int) -> bool:
    rows = await central.rows()
    return len(rows) >= n and all(r.ended_at is not None for r in rows)


@contextmanager
def edge_process(data_dir: Path, central_url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`argus serve` forwarding to `central_url`; yields once it answers."""
    env = {
        **os.environ,
        "ARGUS_DATA_DIR": str(data_dir),
        "ARGUS_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'argus.db'}",
        "ARGUS_API_KEYS": API_KEY,
        "ARGUS_LOG_LEVEL": "warning",
        "ARGUS_FORWARD_URL": central_url,
        "ARGUS_FORWARD_KEY": API_KEY,
        "ARGUS_FORWARD_NAME": "site-k",
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "edge.log").open("ab")
    command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(proc, f"http://127.0.0.1:{port}", (data_dir / "edge.log").read_text, 60)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


class TestEdgeCrash:
    @pytest.mark.slow
    async def test_kill_9_mid_burst_loses_nothing_committed(self, central: Central, tmp_path: Path) -> None:
        port = free_port()
        accepted: list[str] = []
        with edge_process(tmp_path / "edge-k", central.url, port) as proc:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as client:
                for i in range(400):
                    if i == 150:
                        os.kill(proc.pid, signal.SIGKILL)  # mid-burst: some committed, some in flight
                    try:
                        r = await client.post("/api/events", json={"type": "door", "severity": "high"})
                    except httpx.TransportError:
                        break
                    if r.status_code == 202:
                        accepted.append(r.json()["id"])
            proc.wait(10)
        assert len(accepted) >= 150
        before = len(set(accepted) & {r.id for r in await central.rows()})
        print(f"kill -9 after {len(accepted)} accepted events, {before} of them at central")
        with edge_process(tmp_path / "edge-k", central.url, port):
            wanted = set(accepted)

            async def all_there() -> bool:
                return wanted <= {r.id for r in await central.rows()}

            await eventually(all_there, 60, what="every event the edge answered 202 at central")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as client:
                health = (await client.get("/api/health")).json()["forward"]
                metrics = (await client.get("/metrics")).text
            assert health["connected"] and health["name"] == "site-k" and health["url"] == central.url
            assert "argus_forward_connected 1.0" in metrics
            assert API_KEY not in json.dumps(health)
        rows = [r for r in await central.rows() if r.id in wanted]
        assert len(rows) == len(wanted) and all(r.source == "edge:site-k" for r in rows)
