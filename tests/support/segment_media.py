"""Real H.264 for recording tests: encoded with PyAV's libx264, demuxed into `Packet`s like a camera's.

`feed(ring, packets)` appends them as the demux thread would; `at` is wall-clock time from `base`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from app.stream.packets import Packet, PacketRing
from tests.support.footage import file_packets


def make_h264(
    path: Path, seconds: float, fps: int = 15, gop: int = 15, size: tuple[int, int] = (160, 120)
) -> Path:
    """Matroska H.264 with a keyframe every `gop` frames and no B-frames: a moving bar on a ramp."""
    w, h = size
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {
            "preset": "ultrafast",
            "bf": "0",
            "sc_threshold": "0",
            "keyint_min": str(gop),
        }
        for i in range(int(seconds * fps)):
            image = np.full((h, w, 3), (i * 5) % 200, np.uint8)
            x = (i * 3) % (w - 10)
            image[:, x : x + 10] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def packets(
    path: Path, camera_id: int = 1, base: float = 1_800_000_000.0, generation: int = 1
) -> Iterator[Packet]:
    """The file's packets as the source would ring them (`at` = base + pts seconds)."""
    return iter(file_packets(path, base, camera_id, generation))


def feed(ring: PacketRing, items: list[Packet]) -> None:
    for packet in items:
        ring.append(packet)


def decoded_frames(path: Path) -> list[tuple[float, bool]]:
    """(time in seconds, key frame) of every frame PyAV decodes from `path`."""
    with av.open(str(path)) as inp:
        return [(float(f.time or 0.0), f.key_frame) for f in inp.decode(video=0)]
