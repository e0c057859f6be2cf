"""Clip writing cost: CPU of one event clip remuxed from a packet ring (no re-encode), on real footage.

Debian's vtest.avi (pedestrians) encoded once to 720p15 H.264 with a 2-s GOP (x264 veryfast, CRF 23),
then for each clip length a real PacketRing is filled as the demux thread would and a real ClipWriter
(the recorder's writer thread: tap -> fragmented MP4 part files -> fragment scan) writes the clip. CPU is
the writer thread's own (time.thread_time), so the feeding and the bench do not count. For scale, the
same packets are also decoded (what an active camera pays per frame).
Writes bench/results/clips.json and prints one line per clip length.

    .venv/bin/python bench/clips.py [--runs 3] [--lengths 10,30,60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from app.recording.clips import ClipWriter  # noqa: E402
from app.stream.packets import Packet, PacketRing  # noqa: E402
from tests.support.footage import file_packets  # noqa: E402

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
FPS, GOP_S = 15, 2.0


def footage(path: Path, seconds: float) -> Path:
    """vtest.avi's frames as 720p15 H.264 (its 10 FPS frames played at 15: only the packets matter)."""
    if path.exists():
        return path
    with av.open(str(VTEST)) as inp, av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.codec_context.gop_size = int(GOP_S * FPS)
        stream.codec_context.options = {"preset": "veryfast", "bf": "0", "sc_threshold": "0"}
        frames = inp.decode(video=0)
        for i, frame in enumerate(frames):
            if i >= seconds * FPS:
                break
            image = frame.reformat(width=1280, height=720, format="yuv420p")
            image.pts = None
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def ring_packets(path: Path, base: float) -> list[Packet]:
    return file_packets(path, base)


def write_clip(packets: list[Packet], seconds: float, out: Path) -> dict[str, float]:
    """One clip of `seconds` through the real writer; its thread's CPU and the file's size."""
    ring = PacketRing(1, pre_roll_s=5.0)
    base = packets[0].at
    tap = ring.tap(since=base)
    writer = ClipWriter("bench", 1, tap, out, 300.0, lambda w: None, post_roll_s=0.0)
    writer.finish_at(base + seconds)
    writer.start()
    for packet in packets:
        if packet.at > base + seconds + 1:
            break
        ring.append(packet)
    assert writer.thread is not None
    writer.thread.join(30)
    size = sum((out / p.rel).stat().st_size for p in writer.parts)
    return {"cpu_ms": writer.cpu_s * 1000, "packets": writer.packets, "bytes": size}


def decode_ms_per_frame(packets: list[Packet], n: int = 150) -> float:
    """For scale: what decoding costs per frame (an active camera decodes every one)."""
    with packets[0].info.open_template() as tmpl:
        codec = av.CodecContext.create(tmpl.streams.video[0].codec_context.name, "r")
        codec.extradata = tmpl.streams.video[0].codec_context.extradata
        codec.thread_count = 1  # all the work in this thread, where thread_time sees it
        start = time.thread_time()
        for packet in packets[:n]:
            codec.decode(av.Packet(packet.data))
        return (time.thread_time() - start) * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lengths", default="10,30,60")
    args = parser.parse_args()
    lengths = [float(x) for x in args.lengths.split(",")]
    cache = ROOT / "bench" / "results"
    cache.mkdir(parents=True, exist_ok=True)
    source = footage(Path(tempfile.gettempdir()) / "argus-bench-vtest-720p15.mkv", max(lengths) + 2)
    packets = ring_packets(source, time.time() + 3600)
    decode_ms = decode_ms_per_frame(packets)
    rows: list[dict[str, Any]] = []
    for seconds in lengths:
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(write_clip(packets, seconds, Path(tmp)))
        cpu = statistics.median(r["cpu_ms"] for r in runs)
        frames = runs[0]["packets"]
        row = {
            "clip_s": seconds,
            "frames": frames,
            "mb": round(runs[0]["bytes"] / 1e6, 2),
            "cpu_ms_per_clip": round(cpu, 2),
            "cpu_us_per_frame": round(cpu * 1000 / frames, 1),
            # a camera at 15 FPS decoding every frame (active) spends decode_ms * 15 per second of video
            "pct_of_active_camera": round(100 * cpu / (decode_ms * frames), 2),
            "runs": [round(r["cpu_ms"], 2) for r in runs],
        }
        rows.append(row)
        print(
            f"clip {seconds:>4.0f} s ({frames} frames, {row['mb']} MB): {row['cpu_ms_per_clip']} ms CPU, "
            f"{row['cpu_us_per_frame']} us/frame = {row['pct_of_active_camera']} % of decoding those frames"
        )
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "footage": "vtest.avi as 1280x720 H.264 15 FPS, 2-s GOP, x264 veryfast CRF 23",
        "decode_ms_per_frame": round(decode_ms, 3),
        "clips": rows,
    }
    (cache / "clips.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"decode for scale: {decode_ms:.2f} ms/frame; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
