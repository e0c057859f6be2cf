"""Event clips on real footage: written from a camera's packet ring while the event is open, decoded back
with PyAV and OpenCV, served with HTTP Range, split into parts past ARGUS_CLIP_MAX_S, deleted with their
camera. The ring is filled as the demux thread would; the recorder is the app's, with its feed injected."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import httpx
import pytest
from fastapi import FastAPI

from app.events.types import NewEvent, Phase
from app.kit.severity import Severity
from app.lifespan import Runtime
from app.recording.clip_store import ClipRepository, part_relpath
from app.recording.clips import ClipFeed, ClipRecorder, pipeline_feeds
from app.recording.part_writer import TEMPLATES, PartWriter, marker_of
from app.stream.packets import Packet, PacketRing
from tests.conftest import AUTH
from tests.support.clip_media import between, camera_packets, feed, real_h264, utc
from tests.support.waiting import eventually

PRE, POST = 3.0, 2.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    app: FastAPI
    rt: Runtime
    recorder: ClipRecorder
    feeds: dict[int, ClipFeed]
    http: httpx.AsyncClient

    async def camera(self, camera_id: int | None = None) -> PacketRing:
        """A camera row (retention deletes the clips of cameras that do not exist) and its ring."""
        camera_id = camera_id or await add_camera(self.http)
        ring = PacketRing(camera_id, pre_roll_s=PRE + 2)
        self.feeds[camera_id] = ClipFeed(ring, PRE, POST)
        return ring

    async def row(self, event_id: str) -> dict[str, object]:
        response = await self.http.get(f"/api/events/{event_id}")
        return response.json() if response.status_code == 200 else {}

    async def finished(self, event_id: str, parts: int = 1) -> dict[str, object]:
        async def done() -> dict[str, object] | None:
            row = await self.row(event_id)
            idle = self.recorder.stats()["active"] == 0
            return row if idle and len(row.get("clip_urls") or []) == parts else None

        return await eventually(done, timeout=20)

    def path(self, row: dict[str, object], part: int = 1) -> Path:
        rel = f"media/clips/{row['camera_id']}/{row['id']}" + ("" if part == 1 else f".{part}") + ".mp4"
        return self.rt.settings.data_dir / rel


async def add_camera(http: httpx.AsyncClient) -> int:
    """A camera whose stream never answers: its pipeline idles in reconnect, the ring is the test's."""
    name = f"cam-{next(_names)}"
    created = await http.post("/api/cameras", json={"name": name, "url": f"rtsp://127.0.0.1:9/{name}"})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


_names = itertools.count(1)


async def make_rig(app: FastAPI, max_s: float = 300.0) -> AsyncIterator[Rig]:
    rt: Runtime = app.state.runtime
    feeds: dict[int, ClipFeed] = {}
    recorder = ClipRecorder(rt.settings.data_dir, rt.sessionmaker, feeds.get, max_s=max_s, retry_s=0.2)
    async with recorder:
        rt.clips = recorder  # the endpoint asks this one about clips being written
        rt.bus.subscribe("clips", recorder.consider, direct=True)  # replaces the app's own
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as http:
            yield Rig(app, rt, recorder, feeds, http)


@pytest.fixture
async def rig(api_app: FastAPI) -> AsyncIterator[Rig]:
    async for r in make_rig(api_app):
        yield r


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_h264(tmp_path_factory.mktemp("footage") / "vtest-16s.mkv", seconds=16)


def opened(camera_id: int, started: float) -> NewEvent:
    return NewEvent(camera_id=camera_id, type="anomaly", severity=Severity.high, started_at=utc(started))


def play(
    rig: Rig, ring: PacketRing, packets: list[Packet], start: float, event_at: float, end: float
) -> NewEvent:
    """Feed the ring up to the event, publish its open, feed on to `end`; returns the open event."""
    feed(ring, between(packets, start, event_at))
    event = rig.rt.bus.publish(opened(ring.camera_id, event_at))
    feed(ring, between(packets, event_at, end))
    return event


def decoded(path: Path) -> list[tuple[float, bool]]:
    """(presentation time s, keyframe) of every frame PyAV decodes."""
    with av.open(str(path)) as inp:
        return [(float(f.time), f.key_frame) for f in inp.decode(video=0)]


def opencv_times(path: Path) -> list[float]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    times = []
    while capture.grab():
        times.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    capture.release()
    return times


def expected_span(packets: list[Packet], started: float, ended: float) -> list[Packet]:
    """The packets a clip must hold: from the keyframe at or before started - PRE to ended + POST."""
    key = max(p.at for p in packets if p.key and p.at <= started - PRE)
    return [p for p in packets if key <= p.at <= ended + POST]


async def test_clip_starts_at_a_keyframe_before_the_pre_roll_and_covers_the_event_plus_post_roll(
    rig: Rig, footage: Path
) -> None:
    packets = camera_packets(footage)
    base = packets[0].at
    ring = await rig.camera()
    started, ended = base + 6.5, base + 9.0  # pre-roll reaches back to 3.5 s: the keyframe at 2 s
    event = play(rig, ring, packets, base, started, base + 9.5)
    rig.rt.bus.publish(event.evolve(phase=Phase.close, ended_at=utc(ended)))
    feed(ring, between(packets, base + 9.5, base + 16))
    row = await rig.finished(event.id)
    assert row["clip_url"] == f"/api/events/{event.id}/clip.mp4"

    want = expected_span(packets, started, ended)
    assert want[0].at == pytest.approx(base + 2.0)
    frames = decoded(rig.path(row))
    assert len(frames) == len(want)
    assert frames[0] == (0.0, True)  # starts at a keyframe...
    times = [t for t, _ in frames]
    assert times == sorted(times) and len(set(times)) == len(times)  # ...with increasing timestamps
    assert times[-1] == pytest.approx(want[-1].at - want[0].at, abs=1e-3)  # through ended + post-roll
    assert times[-1] >= ended + POST - want[0].at - 1 / 10

    cv = opencv_times(rig.path(row))
    assert len(cv) == len(want)
    assert cv == sorted(cv) and cv[-1] == pytest.approx(times[-1], abs=0.01)


async def test_range_requests_return_the_right_bytes(rig: Rig, footage: Path) -> None:
    packets = camera_packets(footage)
    base = packets[0].at
    ring = await rig.camera()
    event = play(rig, ring, packets, base, base + 5, base + 6)
    rig.rt.bus.publish(event.evolve(phase=Phase.close, ended_at=utc(base + 6)))
    feed(ring, between(packets, base + 6, base + 12))
    row = await rig.finished(event.id)
    data = rig.path(row).read_bytes()
    size, url = len(data), str(row["clip_url"])

    whole = await rig.http.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-50": (size - 50, size - 1),
        f"bytes=1000-{size + 500}": (1000, size - 1),
        "bytes=0-0": (0, 0),
    }
    for header, (first, last) in cases.items():
        part = await rig.http.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == data[first : last + 1], header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert int(part.headers["content-length"]) == last - first + 1
    for bad in (f"bytes={size}-", "bytes=50-10", "bytes=abc", "bytes=-0", "bytes=-"):
        refused = await rig.http.get(url, headers={"Range": bad})
        assert refused.status_code == 416, bad
        assert refused.headers["content-range"] == f"bytes */{size}"
    head = await rig.http.head(url, headers={"Range": "bytes=10-19"})
    assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""
    assert (await rig.http.get(url, headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await rig.http.get(url + "?part=2")).status_code == 404
    assert (await rig.http.get("/api/events/nosuchevent/clip.mp4")).status_code == 404


async def test_a_clip_being_written_is_served_up_to_its_last_complete_fragment(
    rig: Rig, footage: Path
) -> None:
    packets = camera_packets(footage)
    base = packets[0].at
    ring = await rig.camera()
    event = play(rig, ring, packets, base, base + 4, base + 9)  # still open: fragments at 6 and 8 s
    row = await eventually(lambda: _with_clip(rig, event.id), timeout=15)
    writer = rig.recorder.writer(event.id)
    assert writer is not None
    await eventually(lambda: _true(writer.packets == 90), timeout=15)  # 0 .. 8.9 s written
    growing = await rig.http.get(str(row["clip_url"]))
    assert growing.status_code == 200 and growing.headers["cache-control"] == "no-store"
    assert len(growing.content) == rig.recorder.readable(event.id, 1) > 0
    on_disk = rig.path(row).read_bytes()
    assert on_disk.startswith(growing.content) and len(on_disk) >= len(growing.content)
    prefix = rig.path(row).with_name("prefix.mp4")
    prefix.write_bytes(growing.content)
    frames = decoded(prefix)  # the prefix alone is a valid file: whole GOPs from the first keyframe
    assert frames[0][1] and len(frames) % 20 == 0 and len(frames) >= 20
    tail = await rig.http.get(str(row["clip_url"]), headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == growing.content[-100:]

    rig.rt.bus.publish(event.evolve(phase=Phase.close, ended_at=utc(base + 9)))
    feed(ring, between(packets, base + 9, base + 16))
    row = await rig.finished(event.id)
    done = await rig.http.get(str(row["clip_url"]))
    assert done.headers["cache-control"].startswith("private") and done.content == rig.path(row).read_bytes()
    assert len(done.content) > len(growing.content)
    assert done.content.startswith(growing.content)  # what was served early is never rewritten


async def _true(value: bool) -> bool:
    return value


async def _with_clip(rig: Rig, event_id: str) -> dict[str, object] | None:
    row = await rig.row(event_id)
    return row if row.get("clip_url") else None


@pytest.fixture
async def short_rig(api_app: FastAPI) -> AsyncIterator[Rig]:
    async for r in make_rig(api_app, max_s=5.0):
        yield r


async def test_a_clip_past_max_s_continues_in_parts_each_from_a_keyframe(
    short_rig: Rig, footage: Path
) -> None:
    rig = short_rig
    packets = camera_packets(footage)
    base = packets[0].at
    ring = await rig.camera()
    started, ended = base + 4, base + 11
    event = play(rig, ring, packets, base, started, base + 12)
    rig.rt.bus.publish(event.evolve(phase=Phase.close, ended_at=utc(ended)))
    feed(ring, between(packets, base + 12, base + 16))
    want = expected_span(packets, started, ended)  # 0 s to 13 s: 131 frames, parts of 4 s
    row = await rig.finished(event.id, parts=4)
    assert row["clip_urls"] == [f"/api/events/{event.id}/clip.mp4"] + [
        f"/api/events/{event.id}/clip.mp4?part={n}" for n in (2, 3, 4)
    ]
    counts = []
    for part in (1, 2, 3, 4):
        frames = decoded(rig.path(row, part))
        assert frames[0] == (0.0, True)
        assert frames[-1][0] < rig.recorder.max_s  # a part never passes max_s (2-s GOPs: 4 s each)
        counts.append(len(frames))
        served = await rig.http.get(str(row["clip_urls"][part - 1]))
        assert served.status_code == 200 and served.content == rig.path(row, part).read_bytes()
    assert counts == [40, 40, 40, len(want) - 120]  # contiguous: nothing lost or doubled at the cuts


async def test_a_reconnect_starts_a_new_part(rig: Rig, footage: Path) -> None:
    first = camera_packets(footage)
    base = first[0].at
    second = camera_packets(footage, base=base + 8, generation=2)  # new connection: timestamps restart
    ring = await rig.camera()
    event = play(rig, ring, first, base, base + 4, base + 7.05)
    feed(ring, between(second, base + 8, base + 12))
    rig.rt.bus.publish(event.evolve(phase=Phase.close, ended_at=utc(base + 10)))
    feed(ring, between(second, base + 12, base + 24))
    row = await rig.finished(event.id, parts=2)
    one, two = decoded(rig.path(row, 1)), decoded(rig.path(row, 2))
    assert len(one) == 71 and one[0] == (0.0, True)  # 0 .. 7.0 s of the first connection
    assert len(two) == 41 and two[0] == (0.0, True)  # 8 .. 12 s (close + post-roll) of the second


def crash_writing(source: Path, out: Path, seconds: float, garbage: int = 0) -> int:
    """A real process writes `seconds` of a clip to `out` and is SIGKILLed; returns what it could serve."""
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "tests.support.crash_clip",
        str(source),
        str(out),
        str(seconds),
        str(garbage),
    ]
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert marked(out)
    return int(done.stdout.strip())


def marked(path: Path) -> bool:
    """The writer's `.writing` marker is there."""
    return marker_of(path).exists()


async def stored_event(app: FastAPI, camera_id: int) -> NewEvent:
    rt: Runtime = app.state.runtime
    event = rt.bus.publish(opened(camera_id, time.time()))
    await rt.event_logger.flush()
    return event


async def test_a_crash_leaves_no_unreadable_clip(api_app: FastAPI, footage: Path) -> None:
    rt: Runtime = api_app.state.runtime
    data_dir = rt.settings.data_dir
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api_app), base_url="http://argus", headers=AUTH
    ) as http:
        cam = await add_camera(http)
    cut, lost, late, gone = [await stored_event(api_app, cam) for _ in range(4)]
    cut_path = data_dir / part_relpath(cam, cut.id)
    readable = crash_writing(footage, cut_path, 5.0, garbage=3000)  # 2 whole GOPs + a torn fragment
    assert 0 < readable < cut_path.stat().st_size
    lost_path = data_dir / part_relpath(cam, lost.id)
    assert crash_writing(footage, lost_path, 1.0) == 0  # died before its first fragment
    late_path = data_dir / part_relpath(cam, late.id)  # finished, but its row was never linked
    packets = camera_packets(footage)
    writer = PartWriter(late_path, packets[0])
    for packet in packets[:30]:
        writer.write(packet)
    writer.close()
    await ClipRepository(rt.sessionmaker).set_clips(
        {
            cut.id: (part_relpath(cam, cut.id), 1),
            lost.id: (part_relpath(cam, lost.id), 1),
            gone.id: (part_relpath(cam, gone.id), 2),  # its files were deleted by hand
        }
    )

    async for rig in make_rig(api_app):  # a restart: the recorder repairs before anything else
        assert cut_path.stat().st_size == readable
        assert not marked(cut_path)
        frames = decoded(cut_path)
        assert len(frames) == 40 and frames[0] == (0.0, True)  # the two GOPs that were complete
        assert len(opencv_times(cut_path)) == 40
        served = await rig.http.get(f"/api/events/{cut.id}/clip.mp4")
        assert served.status_code == 200 and served.content == cut_path.read_bytes()

        assert not lost_path.exists() and not marked(lost_path)
        row = await rig.row(lost.id)
        assert row["clip_url"] is None and row["clip_urls"] == []
        assert (await rig.http.get(f"/api/events/{lost.id}/clip.mp4")).status_code == 404

        assert (await rig.row(late.id))["clip_url"] == f"/api/events/{late.id}/clip.mp4"
        assert (await rig.row(gone.id))["clip_urls"] == []


async def test_clips_are_deleted_with_their_camera(rig: Rig, footage: Path) -> None:
    ring = await rig.camera()
    camera_id = ring.camera_id
    packets = camera_packets(footage, camera_id=camera_id)
    base = packets[0].at
    event = play(rig, ring, packets, base, base + 4, base + 5)
    rig.rt.bus.publish(event.evolve(phase=Phase.close, ended_at=utc(base + 5)))
    feed(ring, between(packets, base + 5, base + 9))
    row = await rig.finished(event.id)
    other = play(rig, ring, packets, base + 9, base + 10, base + 13)  # still being written
    await eventually(lambda: _with_clip(rig, other.id), timeout=15)
    folder = rig.path(row).parent
    assert len(list(folder.glob("*.mp4"))) == 2

    assert (await rig.http.delete(f"/api/cameras/{camera_id}")).status_code == 204
    assert not folder.exists()
    assert rig.recorder.stats()["active"] == 0
    for event_id in (event.id, other.id):
        kept = await rig.row(event_id)
        assert kept["camera_id"] == camera_id and kept["clip_url"] is None  # the event stays, its video goes
        assert (await rig.http.get(f"/api/events/{event_id}/clip.mp4")).status_code == 404


def test_a_connections_template_is_opened_once_for_all_its_clips(footage: Path, tmp_path: Path) -> None:
    """Opening a template probes it (decodes its keyframe: most of a short clip's CPU); parts and clips
    of one connection share it, a new connection opens its own."""
    first = camera_packets(footage)
    second = camera_packets(footage, generation=2)
    before = TEMPLATES.opened
    for n, packets in enumerate((first, first, first, second)):
        writer = PartWriter(tmp_path / f"{n}.mp4", packets[0])
        for packet in packets[:25]:
            writer.write(packet)
        assert writer.close() > 0
        assert len(decoded(tmp_path / f"{n}.mp4")) == 25
    assert TEMPLATES.opened - before == 2


async def test_a_deleted_events_clip_goes_with_it(rig: Rig, footage: Path) -> None:
    packets = camera_packets(footage)
    base = packets[0].at
    ring = await rig.camera()
    event = play(rig, ring, packets, base, base + 4, base + 5)
    rig.rt.bus.publish(event.evolve(phase=Phase.close, ended_at=utc(base + 5)))
    feed(ring, between(packets, base + 5, base + 9))
    row = await rig.finished(event.id)
    keep = play(rig, ring, packets, base + 9, base + 10, base + 16)
    await eventually(lambda: _with_clip(rig, keep.id), timeout=15)
    await rig.recorder.event_deleted(event.id, ring.camera_id)
    assert not rig.path(row).exists()
    left = sorted(p.name for p in rig.path(row).parent.iterdir())
    assert left == [f"{keep.id}.mp4", f"{keep.id}.mp4.writing"]  # the other event's clip, still being written


async def test_no_clip_is_started_below_the_disk_floor(api_app: FastAPI, footage: Path) -> None:
    rt: Runtime = api_app.state.runtime
    ring = PacketRing(7, pre_roll_s=5)
    floor = ClipRecorder(
        rt.settings.data_dir, rt.sessionmaker, {7: ClipFeed(ring, PRE, POST)}.get, may_write=lambda: False
    )
    async with floor:
        floor.consider(opened(7, time.time()))
        assert floor.stats()["refused"] == 1 and floor.stats()["active"] == 0


def test_clips_follow_the_cameras_record_mode() -> None:
    """A running camera's ring feeds clips unless its record mode is off; a stopped camera has none."""
    ring = PacketRing(3)

    def pipeline(mode: str) -> SimpleNamespace:
        config = SimpleNamespace(record_mode=mode, pre_roll_s=4.0, post_roll_s=6.0)
        return SimpleNamespace(source=SimpleNamespace(ring=ring), config=config)

    running = {1: pipeline("events"), 2: pipeline("continuous"), 3: pipeline("off")}
    lookup = pipeline_feeds(running.get)
    assert lookup(1) == ClipFeed(ring, 4.0, 6.0) and lookup(2) == ClipFeed(ring, 4.0, 6.0)
    assert lookup(3) is None and lookup(4) is None


async def test_health_reports_the_clip_writers(rig: Rig, footage: Path) -> None:
    packets = camera_packets(footage)
    base = packets[0].at
    ring = await rig.camera()
    event = play(rig, ring, packets, base, base + 4, base + 5)
    rig.rt.bus.publish(event.evolve(phase=Phase.close, ended_at=utc(base + 5)))
    feed(ring, between(packets, base + 5, base + 9))
    await rig.finished(event.id)
    clips = (await rig.http.get("/api/health")).json()["clips"]
    assert clips["started"] == clips["finished"] == 1 and clips["active"] == 0
    assert 0 < clips["cpu_s"] < 1
