"""/api/events on SQLite and PostgreSQL: filters, cursor pages, 404s, 422s naming fields, auth, ingest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import httpx
import numpy as np
from fastapi import FastAPI

from app.events.snapshots import save_snapshot
from app.events.types import NewEvent, Phase, utcnow
from app.kit.severity import Severity
from app.lifespan import Runtime
from app.models import Camera
from tests.support.waiting import eventually

T0 = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def runtime(app: FastAPI) -> Runtime:
    return app.state.runtime  # type: ignore[no-any-return]


async def seed(app: FastAPI, events: list[NewEvent]) -> list[NewEvent]:
    """The pipeline's path: publish on the bus, then wait for the logger to commit them."""
    rt = runtime(app)
    for e in events:
        rt.bus.publish(e)
    await asyncio.wait_for(rt.event_logger.flush(), 10)
    return events


async def add_camera(app: FastAPI, name: str = "gate") -> int:
    async with runtime(app).sessionmaker.begin() as session:
        camera = Camera(name=name, url="rtsp://127.0.0.1:1/none", enabled=False)
        session.add(camera)
        await session.flush()
        return camera.id


def ev(minute: float, **kw: Any) -> NewEvent:
    values: dict[str, Any] = {"camera_id": 1, "type": "anomaly", "severity": Severity.medium}
    values.update(kw)
    return NewEvent(started_at=T0 + timedelta(minutes=minute), **values)


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    r = await client.get("/api/events", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


class TestList:
    async def test_filters_combine(self, api_app: FastAPI, api_client: httpx.AsyncClient) -> None:
        a = ev(0, camera_id=1, type="anomaly", severity=Severity.low)
        b = ev(1, camera_id=1, type="object", severity=Severity.high)
        c = ev(2, camera_id=2, type="anomaly", severity=Severity.critical)
        d = ev(3, camera_id=2, type="anomaly", severity=Severity.medium)
        await seed(api_app, [a, b, c, d])

        assert await ids(api_client) == [d.id, c.id, b.id, a.id]  # newest first
        assert await ids(api_client, camera_id=2) == [d.id, c.id]
        assert await ids(api_client, type="anomaly") == [d.id, c.id, a.id]
        assert await ids(api_client, severity="high") == [b.id]
        assert await ids(api_client, min_severity="high") == [c.id, b.id]
        assert await ids(api_client, camera_id=2, min_severity="medium", type="anomaly") == [d.id, c.id]
        since, until = (T0 + timedelta(minutes=1)).isoformat(), (T0 + timedelta(minutes=3)).isoformat()
        assert await ids(api_client, since=since, until=until) == [c.id, b.id]  # since in, until out
        naive = (T0 + timedelta(minutes=2)).replace(tzinfo=None).isoformat()
        assert await ids(api_client, since=naive) == [d.id, c.id]  # no offset means UTC

    async def test_pages_have_no_duplicates_and_no_gaps(
        self, api_app: FastAPI, api_client: httpx.AsyncClient
    ) -> None:
        # given: 25 events, several sharing one started_at (the id breaks the tie)
        events = await seed(api_app, [ev(i // 3) for i in range(25)])
        expected = [e.id for e in sorted(events, key=lambda e: (e.started_at, e.id), reverse=True)]
        # when
        seen: list[str] = []
        sizes: list[int] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
            page = (await api_client.get("/api/events", params=params)).json()
            sizes.append(len(page["items"]))
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        # then
        assert sizes == [10, 10, 5]
        assert seen == expected

    async def test_read_shape_and_closing_version(
        self, api_app: FastAPI, api_client: httpx.AsyncClient
    ) -> None:
        opened = ev(0, score=2.5, data={"peak": 3.1})
        await seed(api_app, [opened])
        ended = T0 + timedelta(minutes=1)
        await seed(api_app, [opened.evolve(phase=Phase.close, ended_at=ended, description="a van")])

        body = (await api_client.get(f"/api/events/{opened.id}")).json()
        assert body["id"] == opened.id
        assert body["ended_at"].replace("Z", "+00:00") == ended.isoformat()
        assert (body["description"], body["score"], body["data"]) == ("a van", 2.5, {"peak": 3.1})
        assert body["snapshot_url"] is None
        assert "snapshot_path" not in body


# One app start per database for all cases: starting the app is the expensive part of these tests.
BAD_QUERIES: list[tuple[dict[str, Any], str]] = [
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"severity": "urgent"}, "severity"),
    ({"min_severity": "bad"}, "min_severity"),
    ({"since": "yesterday"}, "since"),
    ({"camera_id": 0}, "camera_id"),
]
INCONSISTENT_QUERIES: list[tuple[dict[str, Any], str]] = [
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
]
BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"type": "x", "severity": "urgent"}, "severity"),
    ({"type": ""}, "type"),
    ({"type": "   "}, "type"),
    ({"type": "t" * 65}, "type"),
    ({"type": "has space"}, "type"),
    ({}, "type"),
    ({"type": "x", "score": "high"}, "score"),
    ({"type": "x", "data": {"blob": "x" * 20_000}}, "data"),
    ({"type": "x", "id": "mine"}, "id"),
]


class TestErrors:
    async def test_bad_query_is_422_naming_the_field(self, api_client: httpx.AsyncClient) -> None:
        for params, field in BAD_QUERIES:
            r = await api_client.get("/api/events", params=params)
            assert r.status_code == 422, params
            assert any(err["loc"][-1] == field for err in r.json()["errors"]), (params, r.text)

    async def test_inconsistent_query_is_422_naming_the_field(self, api_client: httpx.AsyncClient) -> None:
        for params, field in INCONSISTENT_QUERIES:
            r = await api_client.get("/api/events", params=params)
            assert r.status_code == 422, params
            assert r.json()["field"] == field, params

    async def test_unknown_event_is_404(self, api_client: httpx.AsyncClient) -> None:
        assert (await api_client.get("/api/events/nope")).status_code == 404
        assert (await api_client.get("/api/events/nope/snapshot.jpg")).status_code == 404

    async def test_every_route_needs_a_key(self, api_client: httpx.AsyncClient) -> None:
        calls = [
            ("GET", "/api/events", None),
            ("GET", "/api/events/x", None),
            ("GET", "/api/events/x/snapshot.jpg", None),
            ("POST", "/api/events", {"type": "door_open"}),
        ]
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
            for method, url, body in calls:
                r = await api_client.request(method, url, json=body, headers=headers)
                assert r.status_code == 401, (method, url, r.text)


class TestSnapshot:
    async def test_snapshot_is_served_as_jpeg(self, api_app: FastAPI, api_client: httpx.AsyncClient) -> None:
        image = np.zeros((48, 64, 3), np.uint8)
        image[:, 32:] = (0, 0, 255)
        e = ev(0, camera_id=3)
        rel = await save_snapshot(runtime(api_app).settings.data_dir, e.id, e.camera_id, image, at=T0)
        assert rel == f"snapshots/3/2026-01-02/{e.id}.jpg"
        await seed(api_app, [e.evolve(snapshot_path=rel)])

        body = (await api_client.get(f"/api/events/{e.id}")).json()
        assert body["snapshot_url"] == f"/api/events/{e.id}/snapshot.jpg"
        r = await api_client.get(body["snapshot_url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        decoded = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == image.shape and decoded[10, 50, 2] > 200 and decoded[10, 10, 2] < 50

    async def test_event_without_snapshot_is_404(
        self, api_app: FastAPI, api_client: httpx.AsyncClient
    ) -> None:
        e = (await seed(api_app, [ev(0)]))[0]
        assert (await api_client.get(f"/api/events/{e.id}")).status_code == 200
        assert (await api_client.get(f"/api/events/{e.id}/snapshot.jpg")).status_code == 404


class TestIngest:
    async def test_ingested_event_is_stored_after_the_flush(
        self, api_app: FastAPI, api_client: httpx.AsyncClient
    ) -> None:
        camera_id = await add_camera(api_app)
        before = utcnow()
        body = {"camera_id": camera_id, "type": "door_open", "severity": "high", "score": 1}
        body["data"] = {"door": 2}
        # when
        r = await api_client.post("/api/events", json=body)
        # then
        assert r.status_code == 202
        event_id = r.json()["id"]

        async def stored() -> httpx.Response | None:
            got = await api_client.get(f"/api/events/{event_id}")
            return None if got.status_code == 404 else got

        row = (await eventually(stored, 10, what="ingested event stored")).json()
        assert (row["camera_id"], row["type"], row["severity"], row["source"]) == (
            camera_id,
            "door_open",
            "high",
            "api",
        )
        assert row["data"] == {"door": 2} and row["score"] == 1.0
        assert datetime.fromisoformat(row["started_at"]) >= before - timedelta(seconds=1)

    async def test_ingest_goes_through_the_bus(self, api_app: FastAPI, api_client: httpx.AsyncClient) -> None:
        seen: list[NewEvent] = []
        runtime(api_app).bus.subscribe("test-probe", seen.append, direct=True)
        at = "2026-01-02T10:00:00+02:00"
        r = await api_client.post("/api/events", json={"type": "script", "started_at": at})
        assert r.status_code == 202
        [event] = seen
        assert (event.id, event.source, event.camera_id) == (r.json()["id"], "api", None)
        assert event.severity is Severity.medium
        assert event.started_at == datetime(2026, 1, 2, 8, 0, tzinfo=UTC)

    async def test_bad_body_is_422_naming_the_field(self, api_client: httpx.AsyncClient) -> None:
        for body, field in BAD_BODIES:
            r = await api_client.post("/api/events", json=body)
            assert r.status_code == 422, body
            assert any(field in err["loc"] for err in r.json()["errors"]), (body, r.text)

    async def test_unknown_camera_is_422_naming_camera_id(self, api_client: httpx.AsyncClient) -> None:
        r = await api_client.post("/api/events", json={"camera_id": 999, "type": "door_open"})
        assert r.status_code == 422
        assert r.json()["field"] == "camera_id"
