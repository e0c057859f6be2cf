"""Real footage for clip tests: Debian's vtest.avi (pedestrians) re-encoded to H.264 with a 2-s GOP,
demuxed into `Packet`s stamped like a camera's ring (`at` = base + pts seconds).

Packets are stamped an hour ahead of now by default, so that only packet times (never the wall clock)
decide where a clip ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from app.stream.packets import Packet, PacketRing
from tests.support.footage import file_packets
from tests.support.services import IN_CI

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
FPS = 10  # vtest.avi's own rate


def require_vtest() -> Path:
    if VTEST.exists():
        return VTEST
    message = f"real footage missing: {VTEST} (apt-get install opencv-doc)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def real_h264(path: Path, seconds: float, gop_s: float = 2.0, width: int = 384, bframes: int = 0) -> Path:
    """`seconds` of vtest.avi as H.264 in Matroska, a keyframe exactly every `gop_s` (cached per args)."""
    source = require_vtest()
    if path.exists():
        return path
    gop = round(gop_s * FPS)
    tmp = path.with_suffix(".tmp.mkv")
    with av.open(str(source)) as inp, av.open(str(tmp), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, width * 3 // 4, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {
            "preset": "ultrafast",
            "bf": str(bframes),
            "sc_threshold": "0",
            "keyint_min": str(gop),
        }
        for i, frame in enumerate(inp.decode(video=0)):
            if i >= seconds * FPS:
                break
            image = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
            image.pts = None
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path


def camera_packets(
    path: Path, base: float | None = None, camera_id: int = 1, generation: int = 1
) -> list[Packet]:
    """The file's packets as the source would ring them, an hour from now in whole seconds (exact as
    datetimes) unless `base` says otherwise."""
    base = float(int(time.time()) + 3600) if base is None else base
    return file_packets(path, base, camera_id, generation)


def feed(ring: PacketRing, packets: Iterable[Packet]) -> None:
    for packet in packets:
        ring.append(packet)


def between(packets: list[Packet], start: float, end: float) -> Iterator[Packet]:
    return (p for p in packets if start <= p.at < end)


def utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)
