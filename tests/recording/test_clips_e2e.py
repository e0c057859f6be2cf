"""Event clips end to end: a real RTSP camera serving real footage (H.264 as encoded, 2-s GOP), an event
raised through the API, and the app's own recorder writing its clip from the camera's packet ring."""

from __future__ import annotations

import io
import time
from datetime import datetime
from pathlib import Path

import av
import httpx
import pytest

from app.config import Settings
from tests.support.clip_media import real_h264
from tests.support.media import media_path, write_video
from tests.support.rtsp import RtspServer
from tests.support.waiting import eventually

PRE, POST, GOP = 3.0, 2.0, 2.0


@pytest.fixture(scope="module")
def served_footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_h264(tmp_path_factory.mktemp("rtsp") / "vtest-60s.mkv", seconds=60)


async def test_an_api_event_on_a_live_rtsp_camera_gets_its_clip(
    app_client: httpx.AsyncClient, rtsp_factory: type[RtspServer], served_footage: Path
) -> None:
    server = rtsp_factory(mounts=1, source=str(served_footage))
    server.start()
    body = {"name": "Street", "url": server.url(1), "pre_roll_s": PRE, "post_roll_s": POST}
    created = await app_client.post("/api/cameras", json=body)
    assert created.status_code == 201, created.text
    camera_id = created.json()["id"]

    async def streamed_a_while() -> bool:  # the ring holds more than the pre-roll
        status = (await app_client.get(f"/api/cameras/{camera_id}/status")).json()
        return status.get("state") == "streaming" and time.monotonic() - start > PRE + GOP + 1

    start = time.monotonic()
    await eventually(streamed_a_while, timeout=30)
    event = {"camera_id": camera_id, "type": "door_open", "severity": "high"}
    event_id = (await app_client.post("/api/events", json=event)).json()["id"]

    async def finished_clip() -> httpx.Response | None:
        row = (await app_client.get(f"/api/events/{event_id}")).json()
        if not row.get("clip_url"):
            return None
        clip = await app_client.get(row["clip_url"])
        return clip if clip.headers.get("cache-control", "").startswith("private") else None

    clip = await eventually(finished_clip, timeout=30)
    assert clip.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(clip.content), format="mp4") as inp:
        frames = [(float(f.time), f.key_frame) for f in inp.decode(video=0)]
    times = [t for t, _ in frames]
    assert frames[0] == (0.0, True) and times == sorted(times)
    # from the keyframe at least PRE before the event (at most one GOP more) to POST after it
    assert PRE + POST - 0.2 <= times[-1] <= PRE + GOP + POST + 0.5


def h264_of(avi: Path, out: Path, fps: int = 15) -> Path:
    """The test scene (tests.support.media) as H.264 with a 2-s GOP: a camera's kind of stream."""
    with av.open(str(avi)) as inp, av.open(str(out), "w", format="matroska") as dst:
        stream = dst.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.gop_size = int(GOP * fps)
        stream.codec_context.options = {"preset": "ultrafast", "bf": "0", "sc_threshold": "0"}
        for frame in inp.decode(video=0):
            image = frame.reformat(format="yuv420p")
            image.pts = None
            for packet in stream.encode(image):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


async def test_a_vad_episode_gets_a_clip_from_before_its_start_to_after_its_close(
    app_client: httpx.AsyncClient, settings: Settings
) -> None:
    avi = write_video(media_path(settings, "burst.avi"), seconds=14, motion=(6.0, 8.0))
    video = h264_of(avi, media_path(settings, "burst.mkv"))
    body = {"name": "burst", "url": str(video), "pre_roll_s": PRE, "post_roll_s": POST}
    camera_id = (await app_client.post("/api/cameras", json=body)).json()["id"]

    async def closed_with_clip() -> dict[str, object] | None:
        page = (await app_client.get("/api/events", params={"camera_id": camera_id})).json()
        done = [e for e in page["items"] if e["ended_at"] and e["clip_url"]]
        if not done:
            return None
        clip = await app_client.get(done[-1]["clip_url"])
        return done[-1] if clip.headers.get("cache-control", "").startswith("private") else None

    event = await eventually(closed_with_clip, timeout=60)
    clip = await app_client.get(str(event["clip_url"]))
    with av.open(io.BytesIO(clip.content), format="mp4") as inp:
        frames = [(float(f.time), f.key_frame) for f in inp.decode(video=0)]
    times = [t for t, _ in frames]
    assert frames[0] == (0.0, True) and times == sorted(times)
    started = datetime.fromisoformat(str(event["started_at"]))
    ended = datetime.fromisoformat(str(event["ended_at"]))
    episode = (ended - started).total_seconds()
    assert episode + PRE + POST - 0.5 <= times[-1] <= episode + PRE + GOP + POST + 1.0
