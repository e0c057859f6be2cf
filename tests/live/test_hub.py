"""LiveHub on its own: demand, snapshots sharing the encoder output, forgetting a camera, outbox slots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import cv2
import numpy as np
import pytest

from app.events.types import NewEvent, utcnow
from app.kit.severity import Severity
from app.live.hub import CLOSED, Client, LiveHub
from app.live.protocol import unpack_frame
from app.stream.frame import Frame
from tests.support.viewer import moving_frames
from tests.support.waiting import eventually


@pytest.fixture
async def hub() -> AsyncIterator[LiveHub]:
    async with LiveHub(fps=5.0, jpeg_quality=80, max_width=160) as hub:
        yield hub


def frame(camera_id: int, seq: int, width: int = 320, height: int = 180) -> Frame:
    image = moving_frames(width, height, count=8)[seq % 8]
    return Frame(camera_id, seq, time.time(), image, width, height)


async def next_frame(client: Client, timeout: float = 5.0) -> bytes:

    async def frame_message() -> bytes | None:  # texts and detections are skipped
        message = await client.next_message(timeout)
        return message if isinstance(message, bytes) else None

    return await eventually(frame_message, timeout, interval=0, what="a frame")  # type: ignore[return-value]


class TestDemand:
    async def test_demand_is_the_fastest_subscriber_and_zero_when_nobody_watches(self, hub: LiveHub) -> None:
        a, b = hub.connect(), hub.connect()
        assert hub.demand(1) == 0
        hub.subscribe(a, [1], 2)
        hub.subscribe(b, [1], 8)
        assert hub.demand(1) == 8
        hub.unsubscribe(b, [1])
        assert hub.demand(1) == 2
        hub.disconnect(a)
        assert hub.demand(1) == 0 and hub.stats()["clients"] == 1

    async def test_offer_alone_never_encodes(self, hub: LiveHub) -> None:
        for seq in range(10):
            hub.offer(frame(3, seq))
        assert hub.stats()["encodes"] == 0 and hub.stats()["cameras"][3]["encodes"] == 0


class TestFrames:
    async def test_frames_are_downscaled_to_max_width_with_a_header(self, hub: LiveHub) -> None:
        client = hub.connect()
        hub.subscribe(client, [1])
        hub.offer(frame(1, 41))
        header, jpeg = unpack_frame(await next_frame(client))
        assert (header["camera_id"], header["seq"]) == (1, 41)
        assert (header["width"], header["height"]) == (160, 90)
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (90, 160, 3)

    async def test_a_full_slot_keeps_only_the_newest_frame(self) -> None:
        client = Client(1)
        client.put_frame(1, b"old")
        client.put_frame(2, b"other")
        client.put_frame(1, b"new")
        assert client.frames_dropped == 1
        assert [await client.next_message(0.1) for _ in range(2)] == [b"other", b"new"]
        client.close()
        assert await client.next_message(0.1) is CLOSED

    async def test_json_goes_before_frames(self) -> None:
        client = Client(1)
        client.put_frame(1, b"jpeg")
        client.put_json({"type": "event"})
        assert await client.next_message(0.1) == '{"type":"event"}'


class TestSnapshot:
    async def test_snapshot_reuses_the_live_encode_when_fresh(self, hub: LiveHub) -> None:
        client = hub.connect()
        hub.subscribe(client, [1])
        hub.offer(frame(1, 1))
        _, live_jpeg = unpack_frame(await next_frame(client))

        assert await hub.snapshot_jpeg(1) == live_jpeg
        assert hub.stats()["snapshot_encodes"] == 0

    async def test_snapshot_of_an_unwatched_camera_encodes_the_newest_frame(self, hub: LiveHub) -> None:
        assert await hub.snapshot_jpeg(2) is None
        hub.offer(frame(2, 5))
        jpeg = await hub.snapshot_jpeg(2)
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
        assert hub.stats()["snapshot_encodes"] == 1 and hub.stats()["encodes"] == 0
        assert await hub.snapshot_jpeg(2) == jpeg  # same frame: served from cache
        assert hub.stats()["snapshot_encodes"] == 1


class TestForget:
    async def test_forget_tells_viewers_and_stops_the_ticker(self, hub: LiveHub) -> None:
        client = hub.connect()
        hub.subscribe(client, [4])
        hub.offer(frame(4, 1))
        await next_frame(client)
        hub.forget(4)
        texts = []
        while (message := await client.next_message(0.3)) is not None:
            if isinstance(message, str):
                texts.append(message)
        assert any('"state":"removed"' in t for t in texts)
        assert hub.demand(4) == 0 and client.subs == {} and not hub.knows(4)
        assert await hub.snapshot_jpeg(4) is None

    async def test_camera_less_events_go_to_every_client(self, hub: LiveHub) -> None:
        a, b = hub.connect(), hub.connect()
        hub.subscribe(a, [1])
        hub.publish_event(
            NewEvent(camera_id=None, type="external", severity=Severity.low, started_at=utcnow())
        )
        hub.publish_event(NewEvent(camera_id=1, type="anomaly", severity=Severity.low, started_at=utcnow()))
        got_a = [await asyncio.wait_for(a.next_message(0.1), 1) for _ in range(2)]
        got_b = [await b.next_message(0.1), await b.next_message(0.1)]
        assert all(isinstance(m, str) and '"type":"event"' in m for m in got_a)
        assert isinstance(got_b[0], str) and '"external"' in got_b[0] and got_b[1] is None
