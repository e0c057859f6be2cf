"""Real footage as H.264 test clips: Debian opencv-doc's vtest.avi (pedestrians), re-encoded with PyAV.

    clip = footage_clip(tmp_dir, still_s=6, motion_s=6, noise=0, width=1280)
    clip.path, clip.motion_starts_s, clip.gop_s

`still_s` seconds of the first frame held still (optionally with sensor noise of sd `noise` grey levels,
a night stand-in), then `motion_s` seconds of the real walking pedestrians, then `tail_still_s` of
their last picture held (noise-free). x264 with a fixed GOP
(`gop_s`, 2 s by default) and quality-based rate control (crf) or a fixed bitrate (`bitrate`), so the
stream layer sees what real cameras send. Clips are cached per parameter set in `directory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from app.stream.packets import Packet, StreamInfo, make_template
from tests.support.services import IN_CI

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


@dataclass(frozen=True)
class Clip:
    path: Path
    fps: int
    gop_s: float
    motion_starts_s: float  # the first moving frame's time from the clip's start
    duration_s: float


def require_vtest() -> Path:
    if not VTEST.is_file():
        message = "real footage missing: apt-get install opencv-doc (make system-deps does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return VTEST


def read_vtest(seconds: float, fps: int, size: tuple[int, int]) -> list[np.ndarray]:
    """`seconds` of vtest.avi (10 FPS) resampled to `fps` and resized to `size` (BGR frames)."""
    cap = cv2.VideoCapture(str(require_vtest()))
    source: list[np.ndarray] = []
    while len(source) < int(seconds * 10) + 1:
        ok, image = cap.read()
        if not ok:
            break
        source.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    cap.release()
    return [source[min(len(source) - 1, int(i * 10 / fps))] for i in range(int(seconds * fps))]


def footage_clip(
    directory: Path,
    still_s: float = 6.0,
    motion_s: float = 6.0,
    noise: float = 0.0,
    width: int = 1280,
    fps: int = 15,
    gop_s: float = 2.0,
    bitrate: int | None = None,
    tail_still_s: float = 0.0,
) -> Clip:
    height = round(width * 9 / 16 / 2) * 2
    parts = (still_s, motion_s, tail_still_s, noise, width, fps, gop_s, bitrate or "crf")
    name = "vtest-" + "-".join(f"{p:g}" if isinstance(p, float) else str(p) for p in parts)
    path = directory / f"{name}.mkv"
    # vtest is 10 FPS: at 15 FPS its first picture is shown twice, so motion starts on the 3rd frame
    clip = Clip(path, fps, gop_s, still_s + 2 / fps, still_s + motion_s + tail_still_s)
    if path.exists():
        return clip
    moving = read_vtest(motion_s, fps, (width, height))
    rng = np.random.default_rng(3)
    tmp = path.with_suffix(".part.mkv")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        options = {"g": str(round(gop_s * fps)), "keyint_min": str(round(gop_s * fps)), "sc_threshold": "0"}
        options |= {"preset": "veryfast", "tune": "zerolatency", "bf": "0"}
        if bitrate:
            stream.bit_rate = bitrate
            options |= {
                "nal-hrd": "cbr",
                "x264-params": f"vbv-maxrate={bitrate // 1000}:vbv-bufsize={bitrate // 1000}",
            }
        else:
            options["crf"] = "23"
        stream.options = options
        still = moving[0]
        for i in range(int(still_s * fps)):
            image = still
            if noise:
                grain = rng.normal(0, noise, still.shape)
                image = np.clip(still.astype(np.float32) + grain, 0, 255).astype(np.uint8)
            _encode(out, stream, image, i)
        for j, image in enumerate(moving):
            _encode(out, stream, image, int(still_s * fps) + j)
        start = int(still_s * fps) + len(moving)
        for k in range(int(tail_still_s * fps)):
            _encode(out, stream, moving[-1], start + k)
        for packet in stream.encode():
            out.mux(packet)
    tmp.rename(path)
    return clip


def _encode(out: av.container.OutputContainer, stream: av.VideoStream, image: np.ndarray, i: int) -> None:
    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    frame.pts = i
    for packet in stream.encode(frame):
        out.mux(packet)


def file_packets(
    path: Path, base: float = 1_800_000_000.0, camera_id: int = 1, generation: int = 1
) -> list[Packet]:
    """A video file's packets as a camera's source would ring them: `at` = base + pts seconds."""
    found: list[Packet] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else None
        info: StreamInfo | None = None
        for p in container.demux(stream):
            if p.size == 0 or p.pts is None:
                continue
            if info is None:
                ctx = stream.codec_context
                template = make_template(stream, p)
                info = StreamInfo(
                    camera_id, generation, ctx.name, ctx.width, ctx.height, stream.time_base, rate, template
                )
            at = base + float(p.pts * stream.time_base)
            found.append(Packet(bytes(p), p.pts, p.dts, p.duration or 0, p.is_keyframe, at, info))
    return found
