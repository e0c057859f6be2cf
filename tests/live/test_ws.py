"""/ws/live against a real uvicorn server, with real WebSocket clients and frames fed to its hub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from app.live.protocol import FRAME_HEADER
from tests.conftest import API_KEY, AUTH
from tests.live.conftest import LiveServer, Producer
from tests.support.viewer import Viewer, measure_window, moving_frames
from tests.support.waiting import eventually

FPS_TOLERANCE = 0.5  # the functional tolerance: 5 +/- 0.5 FPS over 5 s


@pytest.fixture
async def cams(live_server: LiveServer, video_file: Path) -> list[int]:
    """Three real file cameras (320x180 at 15 FPS, looping) added through the API, all streaming."""
    ids = [await live_server.add_camera(name, str(video_file)) for name in ("front", "back", "side")]
    for camera_id in ids:
        await live_server.wait_streaming(camera_id)
    return ids


class TestAuth:
    @pytest.mark.parametrize("query", ["", "?token=wrong-key"])
    async def test_missing_or_bad_key_closes_4401_before_sending(
        self, live_server: LiveServer, query: str
    ) -> None:
        viewer = await Viewer.open(live_server.ws_url + query, read=False)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(viewer.ws.recv(), 5)
        assert viewer.ws.close_code == 4401
        assert viewer.texts == [] and viewer.frames == []

    async def test_bearer_header_is_accepted(self, live_server: LiveServer) -> None:
        viewer = await Viewer.open(
            live_server.ws_url, additional_headers={"Authorization": f"Bearer {API_KEY}"}
        )
        await viewer.send({"type": "ping"})
        assert (await viewer.expect("pong"))["ts"] > 0
        await viewer.close()


class TestStreaming:
    async def test_subscriber_gets_5fps_and_a_slower_one_its_own_rate(
        self, live_server: LiveServer, cams: list[int]
    ) -> None:
        fast = await Viewer.open(live_server.ws_auth_url())
        slow = await Viewer.open(live_server.ws_auth_url())
        reply = await fast.subscribe([cams[0]])
        assert reply["fps"] == 5.0 and reply["watching"] == [cams[0]]
        await slow.subscribe([cams[0]], fps=2)
        await fast.wait_frames(cams[0], 3)

        start, end = await measure_window(5.0)

        assert abs(fast.rate(cams[0], start, end) - 5.0) <= FPS_TOLERANCE
        assert abs(slow.rate(cams[0], start, end) - 2.0) <= FPS_TOLERANCE
        _, header, size = fast.frames[-1]
        assert (header["width"], header["height"]) == (320, 180) and size > 500
        assert header["version"] == 1 and header["captured_at"] > time.time() - 10
        seqs = [h["seq"] for _, h, _ in fast.frames]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # newest frames, never repeated
        await fast.close()
        await slow.close()

    async def test_unsubscribe_stops_frames_and_encoding(
        self, live_server: LiveServer, cams: list[int]
    ) -> None:
        viewer = await Viewer.open(live_server.ws_auth_url())
        await viewer.subscribe(cams[:2])
        await viewer.wait_frames(cams[1], 2)

        mark = len(viewer.texts)
        await viewer.send({"type": "unsubscribe", "camera_ids": [cams[1]]})
        reply = await viewer.expect("unsubscribed", after=mark)
        after = time.monotonic()
        encodes = (await live_server.acall(live_server.hub.stats))["cameras"][cams[1]]["encodes"]
        # frames of the other camera keep coming: proof the window below was live
        await viewer.wait_frames(
            cams[0], len([1 for _, h, _ in viewer.frames if h["camera_id"] == cams[0]]) + 5
        )

        assert reply["watching"] == [cams[0]]
        assert viewer.count(cams[1], after, time.monotonic()) == 0
        assert await live_server.acall(live_server.hub.demand, cams[1]) == 0
        stats = await live_server.acall(live_server.hub.stats)
        assert stats["cameras"][cams[1]]["encodes"] == encodes
        await viewer.close()

    async def test_encodes_follow_watched_cameras_not_clients(
        self, live_server: LiveServer, cams: list[int]
    ) -> None:
        watched, unwatched = cams[:2], cams[2]
        rates = []
        for clients in (1, 20):
            viewers = [await Viewer.open(live_server.ws_auth_url()) for _ in range(clients)]
            for v in viewers:
                await v.subscribe(watched)
            await viewers[-1].wait_frames(watched[1], 3)
            before = (await live_server.acall(live_server.hub.stats))["cameras"]
            start, end = await measure_window(3.0)
            after = (await live_server.acall(live_server.hub.stats))["cameras"]
            rates.append(sum(after[c]["encodes"] - before[c]["encodes"] for c in watched) / (end - start))
            assert all(abs(v.rate(c, start, end) - 5.0) <= FPS_TOLERANCE for v in viewers for c in watched)
            for v in viewers:
                await v.close()

        for rate in rates:  # 2 watched cameras x 5 fps, whatever the number of viewers
            assert abs(rate - 10.0) <= 2 * FPS_TOLERANCE
        stats = await live_server.acall(live_server.hub.stats)
        assert stats["cameras"][unwatched]["encodes"] == 0
        assert stats["snapshot_encodes"] == 0


class TestMessages:
    @pytest.mark.parametrize(
        ("message", "code", "field"),
        [
            ("not json", "invalid_json", None),
            ('{"type": "dance"}', "unknown_type", "type"),
            ('{"type": "subscribe"}', "invalid_message", "camera_ids"),
            ('{"type": "subscribe", "camera_ids": [1], "fps": 60}', "invalid_message", "fps"),
            ('{"type": "subscribe", "camera_ids": []}', "invalid_message", "camera_ids"),
            ('{"type": "unsubscribe", "camera_ids": ["x"]}', "invalid_message", "camera_ids.0"),
            ('{"type": "subscribe", "camera_ids": [424242]}', "unknown_camera", "camera_ids"),
        ],
    )
    async def test_bad_message_gets_an_error_and_the_connection_stays_up(
        self, live_server: LiveServer, message: str, code: str, field: str | None
    ) -> None:
        viewer = await Viewer.open(live_server.ws_auth_url())
        await viewer.send(message)
        error = await viewer.expect("error")
        assert error["code"] == code and error.get("field") == field and error["message"]
        await viewer.send({"type": "ping"})
        await viewer.expect("pong")
        await viewer.close()

    async def test_binary_message_is_refused(self, live_server: LiveServer) -> None:
        viewer = await Viewer.open(live_server.ws_auth_url())
        await viewer.ws.send(b"\x00\x01")
        assert (await viewer.expect("error"))["code"] == "binary_not_accepted"
        await viewer.close()

    async def test_known_ids_subscribe_even_when_others_are_unknown(
        self, live_server: LiveServer, cams: list[int]
    ) -> None:
        viewer = await Viewer.open(live_server.ws_auth_url())
        await viewer.send({"type": "subscribe", "camera_ids": [cams[0], 999]})
        assert (await viewer.expect("subscribed"))["camera_ids"] == [cams[0]]
        assert (await viewer.expect("error"))["camera_ids"] == [999]
        await viewer.wait_frames(cams[0], 1)
        await viewer.close()

    async def test_state_detections_and_events_reach_subscribers_only(
        self, live_server: LiveServer, cams: list[int]
    ) -> None:
        watcher = await Viewer.open(live_server.ws_auth_url())
        other = await Viewer.open(live_server.ws_auth_url())
        await watcher.subscribe([cams[0]])
        await other.subscribe([cams[1]])
        # the camera's current state is replayed on subscribe
        assert (await watcher.expect("camera_state"))["state"] == "streaming"
        await other.expect("camera_state", state="streaming")
        mark = len(other.texts)

        boxes = [{"box": [10.0, 20.0, 50.0, 90.0], "confidence": 0.9, "class_id": 0, "label": "person"}]
        hub = live_server.hub
        await live_server.acall(hub.publish_detections, cams[0], 7, time.time(), 320, 180, boxes)
        async with httpx.AsyncClient(base_url=live_server.url, headers=AUTH) as http:
            body = {"camera_id": cams[0], "type": "door_open", "severity": "high"}
            accepted = (await http.post("/api/events", json=body)).json()
            await http.patch(f"/api/cameras/{cams[0]}", json={"enabled": False})

        detections = await watcher.expect("detections")
        assert detections["detections"] == boxes and detections["seq"] == 7
        got = await watcher.expect("event")
        assert got["event"]["id"] == accepted["id"] and got["event"]["severity"] == "high"
        assert got["event"]["snapshot_url"] is None and "snapshot_path" not in got["event"]
        assert (await watcher.expect("camera_state", state="stopped"))["camera_id"] == cams[0]
        await other.wait_frames(cams[1], 3)
        assert [m["type"] for m in other.texts[mark:]] == []  # nothing about a camera it does not watch
        await watcher.close()
        await other.close()


@pytest.fixture
async def fed(live_server: LiveServer) -> AsyncIterator[tuple[int, int]]:
    """(small, noise) cameras fed straight into the hub: random 1280x720 noise makes ~600 kB JPEGs,
    so a stalled socket's buffers fill within seconds (a file camera would take minutes)."""
    small, noise = await live_server.add_camera_rows("small", "noise")
    live_server.hub.max_width = 1280
    producers = [
        Producer(live_server.hub, [small], 15.0, moving_frames(320, 180)),
        Producer(live_server.hub, [noise], 15.0, moving_frames(1280, 720, count=4, noise=True)),
    ]
    for p in producers:
        await live_server.arun(p.start())
    yield small, noise
    for p in producers:
        await live_server.arun(p.stop())


@pytest.fixture
async def stalled(live_server: LiveServer) -> AsyncIterator[list[Viewer]]:
    """Clients that never read; dropped at teardown (a stalled peer never completes a close)."""
    viewers: list[Viewer] = []
    yield viewers
    for v in viewers:
        v.abort()


class TestSlowClients:
    async def test_stalled_client_costs_others_nothing(
        self, live_server: LiveServer, fed: tuple[int, int], stalled: list[Viewer]
    ) -> None:
        _, noise = fed
        stalled.append(await Viewer.open_stalled(live_server.ws_auth_url()))
        await stalled[0].send({"type": "subscribe", "camera_ids": [noise]})
        good = await Viewer.open(live_server.ws_auth_url())
        await good.subscribe([noise])
        await eventually(
            lambda: live_server.acall(_drops, live_server), 20, what="frames of the stalled dropped"
        )
        await good.wait_frames(noise, 3)
        rss_before = psutil.Process().memory_info().rss

        start, end = await measure_window(5.0)

        rss_growth = psutil.Process().memory_info().rss - rss_before
        assert abs(good.rate(noise, start, end) - 5.0) <= FPS_TOLERANCE
        stats = await live_server.acall(live_server.hub.stats)
        assert stats["frames_dropped"] >= 20  # the stalled client kept losing its own frames ...
        assert rss_growth < 10 * 2**20, rss_growth  # ... instead of queueing ~15 MB of them
        await good.close()

    async def test_a_client_stalled_past_the_timeout_is_dropped(
        self, live_server: LiveServer, fed: tuple[int, int], stalled: list[Viewer]
    ) -> None:
        small, noise = fed
        live_server.app.state.runtime.settings.live_stall_timeout_s = 1.0
        stalled.append(await Viewer.open_stalled(live_server.ws_auth_url()))
        await stalled[0].send({"type": "subscribe", "camera_ids": [noise]})
        watcher = await Viewer.open(live_server.ws_auth_url())
        await watcher.subscribe([small])
        await eventually(
            lambda: live_server.acall(live_server.hub.demand, noise), 20, what="the stalled client's demand"
        )

        async def reaped() -> bool:
            return (await live_server.acall(live_server.hub.stats))["clients"] == 1

        await eventually(reaped, 30, what="the stalled client reaped")
        assert await live_server.acall(live_server.hub.demand, noise) == 0
        await watcher.wait_frames(small, 3)
        await watcher.close()


def _drops(server: LiveServer) -> int:
    return int(server.hub.stats()["frames_dropped"])


def test_header_layout_is_28_bytes() -> None:
    assert FRAME_HEADER.size == 28 and FRAME_HEADER.format == "<HHIQdHH"
