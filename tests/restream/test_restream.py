"""Annotated re-stream: frames from the live hub, boxes drawn, H.264 published over RTSP to a real server
(GStreamer in RECORD mode, writing what it receives to a file), read back: the box is there, the fps
holds; the server restarting mid-stream; the API."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest

from app.kit.backoff import Backoff
from app.live.hub import LiveHub
from app.restream.publisher import Publisher
from app.restream.restreamer import Restreamer, RestreamSpec
from app.stream.frame import Frame
from tests.support.rtsp import SYSTEM_PYTHON, require_gstreamer
from tests.support.server import free_port

pytestmark = pytest.mark.rtsp
SCRIPT = Path(__file__).resolve().parents[1] / "support" / "rtsp_record_server.py"


class RecordServer:
    """Accepts one publisher on /live and writes its H.264 to `out`; restartable on the same port."""

    def __init__(self) -> None:
        require_gstreamer()
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self, out: Path) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SCRIPT), str(self.port), str(out)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def server() -> AsyncIterator[RecordServer]:
    s = RecordServer()
    yield s  # type: ignore[misc]
    s.stop()


async def feed(hub: LiveHub, seconds: float, fps: float = 15.0) -> None:
    """A 640x360 black camera at `fps` with one detection box, as a pipeline would offer them."""
    image = np.zeros((360, 640, 3), np.uint8)
    box = [{"box": [100.0, 100.0, 300.0, 200.0], "label": "person", "score": 0.9}]
    for seq in range(int(seconds * fps)):
        hub.offer(Frame(1, seq, time.time(), image, 640, 360))
        hub.publish_detections(1, seq, time.time(), 640, 360, box)
        await asyncio.sleep(1 / fps)


def read_back(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        frames = [f for f in container.decode(video=0)]
    duration = float(frames[-1].time - frames[0].time) if len(frames) > 1 else 0.0
    return [f.to_ndarray(format="bgr24") for f in frames], duration


class TestRestream:
    async def test_published_video_has_the_box_and_holds_its_fps(
        self, server: RecordServer, tmp_path: Path
    ) -> None:
        out = tmp_path / "got.mkv"
        server.start(out)
        async with LiveHub(fps=5.0) as hub:
            spec = RestreamSpec(1, "cam", server.url, 5.0, 320, ("boxes", "timestamp"))
            restreamer = Restreamer(spec, hub)
            async with restreamer:
                await feed(hub, 4.0)
            stats = restreamer.stats()
        frames, duration = read_back(out)
        print(
            f"restream: {len(frames)} frames over {duration:.2f} s, encoder CPU {stats['cpu_s']} s, {stats}"
        )
        assert stats["sent"] >= 15 and stats["last_error"] is None
        fps = (len(frames) - 1) / duration
        assert 4.0 <= fps <= 6.0, (len(frames), duration)
        image = frames[-1]
        assert image.shape[1] == 320
        b, g, r = (int(v) for v in image[50, 100])  # the top edge of the box, scaled 640 -> 320
        assert g > 150 and r < 100 and b < 100, (b, g, r)
        assert image[75, 100].max() < 60  # inside the box: the black picture

    async def test_a_server_that_goes_away_is_published_to_again_when_it_returns(
        self, server: RecordServer, tmp_path: Path
    ) -> None:
        server.start(tmp_path / "first.mkv")
        async with LiveHub(fps=5.0) as hub:
            spec = RestreamSpec(1, "cam", server.url, 5.0, 320, ("boxes",))
            publisher = Publisher(spec.url, spec.fps, name="1", backoff=Backoff(initial=0.2, cap=0.5))
            async with Restreamer(spec, hub, publisher):
                await feed(hub, 2.0)
                server.stop()
                await feed(hub, 1.0)
                server.start(tmp_path / "second.mkv")
                await feed(hub, 4.0)
        frames, _ = read_back(tmp_path / "second.mkv")
        assert publisher.restarts >= 1 and len(frames) >= 5
