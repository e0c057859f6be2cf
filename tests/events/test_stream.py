"""GET /api/events/stream over real HTTP (uvicorn on 127.0.0.1 in the test's loop): live new/update/end,
filters, resume with Last-Event-ID from the database, heartbeats, a slow client cut off, bad input."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.events.stream import EventStreamHub, Position
from app.events.types import NewEvent, Phase
from app.kit.severity import Severity
from app.lifespan import Runtime
from app.main import create_app
from tests.conftest import API_KEY, AUTH, make_settings
from tests.support.server import free_port
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", event_stream_heartbeat_s=0.2, event_flush_interval_s=0.05)


@dataclass
class Served:
    url: str
    rt: Runtime

    def publish(self, *events: NewEvent) -> None:
        for e in events:
            self.rt.bus.publish(e)

    async def stored(self, *events: NewEvent) -> None:
        await self.rt.bus.drain()
        await self.rt.event_logger.flush()


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        assert not task.done(), "server exited while starting"
        return bool(server.started)

    await eventually(started, 30, interval=0.02, what="server start")
    yield Served(f"http://127.0.0.1:{port}", app.state.runtime)
    server.should_exit = True
    await task


@dataclass
class Message:
    event: str | None
    id: str | None
    data: Any
    comment: str | None = None


class Reader:
    """Parses a text/event-stream as a client library would."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> Message:
        fields: dict[str, str] = {}
        comment = None
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if line == "":
                    if fields or comment is not None:
                        data = json.loads(fields["data"]) if "data" in fields else None
                        return Message(fields.get("event"), fields.get("id"), data, comment)
                    continue
                if line.startswith(":"):
                    comment = line[1:].strip()
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        raise EOFError("stream ended")

    async def next_event(self, timeout: float = 5.0) -> Message:
        while True:
            message = await self.next(timeout)
            if message.event is not None:
                return message


def event(camera_id: int | None = None, type_: str = "anomaly", severity: str = "high") -> NewEvent:
    return NewEvent(camera_id, type_, Severity(severity), datetime.now(UTC), score=1.0)


async def open_stream(client: httpx.AsyncClient, served: Served, **params: Any) -> Any:
    headers = dict(AUTH)
    if "last_event_id" in params:
        headers["Last-Event-ID"] = params.pop("last_event_id")
    return client.stream("GET", f"{served.url}/api/events/stream", params=params, headers=headers)


class TestLive:
    async def test_an_episode_arrives_as_new_update_end_with_resumable_ids(self, served: Served) -> None:
        async with httpx.AsyncClient(timeout=10) as client, await open_stream(client, served) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-accel-buffering"] == "no"  # nginx passes it on unbuffered
            reader = Reader(response)
            hello = await reader.next()
            assert hello.comment == "argus event stream"
            e = event()
            served.publish(e, e.evolve(phase=Phase.update, score=2.0), e.evolve(phase=Phase.close))
            got = [await reader.next_event() for _ in range(3)]
        assert [m.event for m in got] == ["new", "update", "end"]
        assert all(m.data["id"] == e.id for m in got) and got[1].data["score"] == 2.0
        assert all(Position.parse(m.id or "").event_id == e.id for m in got)
        assert "snapshot_path" not in got[0].data

    async def test_filters_apply_like_the_list(self, served: Served) -> None:
        async with (
            httpx.AsyncClient(timeout=10) as client,
            await open_stream(client, served, min_severity="high", type="anomaly") as response,
        ):
            reader = Reader(response)
            await reader.next()
            low, other, wanted = event(severity="low"), event(type_="door"), event(severity="critical")
            served.publish(low, other, wanted)
            first = await reader.next_event()
        assert first.data["id"] == wanted.id

    async def test_an_idle_stream_gets_heartbeats(self, served: Served) -> None:
        async with httpx.AsyncClient(timeout=10) as client, await open_stream(client, served) as response:
            reader = Reader(response)
            await reader.next()
            beat = await reader.next(timeout=2)
        assert beat.comment == "heartbeat" and beat.event is None


class TestResume:
    async def test_a_reconnecting_consumer_misses_nothing(self, served: Served) -> None:
        seen = event()
        missed = [event() for _ in range(3)]
        async with httpx.AsyncClient(timeout=10) as client:
            async with await open_stream(client, served) as response:
                reader = Reader(response)
                await reader.next()
                served.publish(seen)
                last = await reader.next_event()
            # while disconnected: three events open, the first also closes
            served.publish(*missed, missed[0].evolve(phase=Phase.close, ended_at=datetime.now(UTC)))
            await served.stored()
            async with await open_stream(client, served, last_event_id=last.id) as response:
                reader = Reader(response)
                await reader.next()
                replayed = [await reader.next_event() for _ in range(4)]  # `seen` again (slack), then 3
                live = event()
                served.publish(live)
                while (message := await reader.next_event()).data["id"] != live.id:
                    replayed.append(message)
        states = {m.data["id"]: m.event for m in replayed}
        assert {e.id for e in missed} <= set(states)
        assert states[missed[0].id] == "end" and states[missed[1].id] == "new"
        assert message.event == "new"  # then the live stream goes on

    async def test_the_query_parameter_resumes_too_and_a_bad_id_is_422(self, served: Served) -> None:
        e = event()
        served.publish(e)
        await served.stored()
        since = str(Position(datetime.now(UTC), "x"))
        async with httpx.AsyncClient(timeout=10, headers=AUTH) as client:
            async with client.stream(
                "GET", f"{served.url}/api/events/stream", params={"last_event_id": since}
            ) as response:
                reader = Reader(response)
                await reader.next()
                replayed = await reader.next_event()
            assert replayed.data["id"] == e.id  # within the resume slack
            bad = await client.get(f"{served.url}/api/events/stream", headers={"Last-Event-ID": "nonsense"})
            assert bad.status_code == 422 and bad.json()["field"] == "Last-Event-ID"
            anonymous = await client.get(f"{served.url}/api/events/stream", headers={"Authorization": ""})
            assert anonymous.status_code == 401


class TestSlowClients:
    async def test_a_full_queue_cuts_the_client_off_without_touching_others(self) -> None:
        hub = EventStreamHub(queue_size=2)
        with hub.client() as slow, hub.client() as fast:
            for _ in range(3):
                hub.publish(event())
                if not fast.queue.empty():
                    fast.queue.get_nowait()
            assert slow.overflowed.is_set() and slow.queue.qsize() == 2
            assert not fast.overflowed.is_set()
            assert hub.stats() == {"clients": 2, "sent": 5, "cut_off": 1}
        assert hub.stats()["clients"] == 0


class TestDocs:
    async def test_the_documented_python_consumer_prints_events_and_resumes(self, served: Served) -> None:
        text = (ROOT / "docs" / "events-stream.md").read_text()
        code = text.split("```python\n", 1)[1].split("```", 1)[0]
        code = code.replace("http://127.0.0.1:8000", served.url).replace("your-api-key", API_KEY)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            connected = lambda: served.rt.event_stream.stats()["clients"] > 0  # noqa: E731
            await eventually(connected, 10, what="the documented consumer connecting")
            low, high = event(severity="low"), event(severity="critical")
            served.publish(low, high)
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
        finally:
            proc.kill()
            await proc.wait()
        assert line.decode().startswith("new {") and high.id in line.decode() and low.id not in line.decode()
