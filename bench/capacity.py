"""Capacity: N cameras of 1280x720 H.264 at 15 FPS, analysed at 5 FPS with VAD, against a bare decode loop.

For each N (default 1, 4, 8, 16) and in the same run:
- bare: a worker process opens the N RTSP streams with OpenCV (same options as Argus) and only
  `grab()`s every frame: the physical decode limit of this machine;
- argus: `argus serve` in a subprocess, N cameras added over REST (analysis_fps=5, VAD on), measured
  through /api/cameras/{id}/status (frame counters) and psutil (process CPU %, RSS).
The RTSP server serves a clip encoded once (2 Mbit/s, like a real 720p camera) without re-encoding, and is
restarted for every phase so each client starts at the beginning of the clip.

    .venv/bin/python bench/capacity.py [--counts 1,4,8,16] [--seconds 20] [--warmup 5]

Writes bench/results/capacity.json and prints one line per N. The machine is shared: CPU figures
include whatever else runs; compare bare and argus of the same N, measured back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from app.stream.source import DEFAULT_FFMPEG_OPTIONS, FFMPEG_OPTIONS_ENV  # noqa: E402
from tests.fixtures.rtsp import SYSTEM_PYTHON, RtspServer  # noqa: E402
from tests.support.server import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "capacity.json"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "argus-bench"
W, H, FPS, CLIP_S, BITRATE_KBPS = 1280, 720, 15, 75, 2048
ANALYSIS_FPS = 5.0
KEY = "bench-key-0123456789"

ENCODER = """
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
p = Gst.parse_launch(
    "fdsrc fd=0 ! rawvideoparse width=%d height=%d format=i420 framerate=%d/1 "
    "! x264enc speed-preset=veryfast bitrate=%d key-int-max=%d bframes=0 "
    "! video/x-h264,profile=main ! h264parse ! matroskamux ! filesink location=" + sys.argv[1])
p.set_state(Gst.State.PLAYING)
msg = p.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
p.set_state(Gst.State.NULL)
sys.exit(0 if msg.type == Gst.MessageType.EOS else 1)
"""


# -- the clip --


def street_frames(seconds: int) -> Iterator[np.ndarray]:
    """A textured street with sensor noise and traffic always moving: not a cheap black test pattern."""
    from app.demo import _background, _draw_crossing

    base = _background("ARGUS BENCH 720p")
    rng = np.random.default_rng(3)
    noise = [rng.normal(0, 3, (H, W, 1)).astype(np.int16) for _ in range(6)]
    for i in range(seconds * FPS):
        small = base.copy()
        _draw_crossing(small, (i % (8 * FPS)) / (8 * FPS), 1)
        big = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
        frame = np.clip(big.astype(np.int16) + noise[i % len(noise)], 0, 255).astype(np.uint8)
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)


def ensure_clip() -> Path:
    clip = CACHE / f"street-{W}x{H}-{FPS}fps-{CLIP_S}s-{BITRATE_KBPS}k.mkv"
    if clip.is_file() and clip.stat().st_size > 0:
        return clip
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = clip.with_suffix(".partial.mkv")
    script = ENCODER % (W, H, FPS, BITRATE_KBPS, 2 * FPS)
    print(f"encoding the {CLIP_S}-s 720p clip once into {clip} ...", flush=True)
    enc = subprocess.Popen([SYSTEM_PYTHON, "-c", script, str(tmp)], stdin=subprocess.PIPE)
    assert enc.stdin is not None
    for yuv in street_frames(CLIP_S):
        enc.stdin.write(yuv.tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        raise RuntimeError("clip encoding failed (GStreamer x264enc)")
    tmp.replace(clip)
    return clip


# -- bare decode: the physical limit --


def bare_worker(urls: list[str], warmup: float, seconds: float) -> None:
    """Runs in its own process: grab() every frame of every stream, nothing else; prints JSON."""
    os.environ.setdefault(FFMPEG_OPTIONS_ENV, DEFAULT_FFMPEG_OPTIONS)
    counts = [0] * len(urls)
    opened = threading.Barrier(len(urls) + 1)
    stop = threading.Event()

    def loop(i: int, url: str) -> None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 2)
        opened.wait()
        while not stop.is_set() and cap.grab():
            counts[i] += 1
        cap.release()

    threads = [threading.Thread(target=loop, args=(i, u), daemon=True) for i, u in enumerate(urls)]
    for t in threads:
        t.start()
    opened.wait(60)
    time.sleep(warmup)
    before, cpu0, t0 = list(counts), _cpu_self(), time.monotonic()
    time.sleep(seconds)
    after, cpu1, t1 = list(counts), _cpu_self(), time.monotonic()
    stop.set()
    elapsed = t1 - t0
    fps = [(a - b) / elapsed for a, b in zip(after, before, strict=True)]
    rss = psutil.Process().memory_info().rss
    result = {"fps": fps, "cpu_pct": 100 * (cpu1 - cpu0) / elapsed, "rss_mb": rss / 2**20}
    print(json.dumps(result), flush=True)
    for t in threads:
        t.join(10)


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_bare(n: int, clip: Path, warmup: float, seconds: float) -> dict[str, Any]:
    with RtspServer(mounts=n, source=str(clip)) as server:
        urls = [server.url(i + 1) for i in range(n)]
        server_cpu = _cpu_of(server.proc.pid if server.proc else None)
        out = subprocess.run(
            [sys.executable, __file__, "--bare-worker", str(warmup), str(seconds), *urls],
            capture_output=True,
            text=True,
            timeout=120 + warmup + seconds,
        )
        rtsp_cpu = server_cpu()
    if out.returncode != 0:
        raise RuntimeError(f"bare worker failed: {out.stderr[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    fps = data["fps"]
    return {
        "fps_per_camera": round(sum(fps) / n, 2),
        "fps_min": round(min(fps), 2),
        "cpu_pct": round(data["cpu_pct"], 1),
        "cpu_ms_per_frame": round(10 * data["cpu_pct"] / max(sum(fps), 1e-9), 2),
        "rss_mb": round(data["rss_mb"], 1),
        "rtsp_server_cpu_pct": rtsp_cpu,
        "load_avg_1m": round(os.getloadavg()[0], 1),  # others' work on a shared machine skews everything
    }


def _cpu_of(pid: int | None) -> Any:
    """Returns a callable giving the CPU % of `pid` since now (the RTSP server's own share)."""
    if pid is None:
        return lambda: None
    proc = psutil.Process(pid)
    c0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
    return lambda: round(100 * (sum(proc.cpu_times()[:2]) - c0) / (time.monotonic() - t0), 1)


# -- argus --


def run_argus(n: int, clip: Path, warmup: float, seconds: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="argus-bench-") as tmp,
        RtspServer(mounts=n, source=str(clip)) as rtsp,
    ):
        port = free_port()
        env = {
            **os.environ,
            "ARGUS_DATA_DIR": tmp,
            "ARGUS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/argus.db",
            "ARGUS_API_KEYS": KEY,
            "ARGUS_LOG_LEVEL": "warning",
        }
        log = open(Path(tmp) / "server.log", "w")  # noqa: SIM115 (closed below, after the server exits)
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            return _measure_argus(n, f"http://127.0.0.1:{port}", server, rtsp, warmup, seconds)
        except Exception:
            log.flush()
            print((Path(tmp) / "server.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def _measure_argus(
    n: int, base: str, server: subprocess.Popen[bytes], rtsp: RtspServer, warmup: float, seconds: float
) -> dict[str, Any]:
    proc = psutil.Process(server.pid)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as api:
        _wait(lambda: _up(api), 60, "argus to answer /api/health")
        ids = []
        for i in range(n):
            body = {"name": f"bench-{i + 1}", "url": rtsp.url(i + 1), "analysis_fps": ANALYSIS_FPS}
            r = api.post("/api/cameras", json=body)
            r.raise_for_status()
            ids.append(r.json()["id"])

        def statuses() -> list[dict[str, Any]]:
            replies = [api.get(f"/api/cameras/{i}/status") for i in ids]
            for r in replies:
                if r.status_code != 200:
                    raise RuntimeError(f"{r.request.url.path}: {r.status_code} {r.text[:300]}")
            return [r.json() for r in replies]

        def all_streaming() -> bool:
            # a camera can answer 404 for a moment after its 201: the API commits after responding
            replies = [api.get(f"/api/cameras/{i}/status") for i in ids]
            return all(r.status_code == 200 and r.json()["state"] == "streaming" for r in replies)

        _wait(all_streaming, 60, "all cameras streaming")
        time.sleep(warmup)
        rtsp_cpu = _cpu_of(rtsp.proc.pid if rtsp.proc else None)
        s0, c0, t0 = statuses(), sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(seconds)
        s1, c1, t1 = statuses(), sum(proc.cpu_times()[:2]), time.monotonic()
        rss = proc.memory_info().rss
        models = api.get("/api/models").json() if n else None
    elapsed = t1 - t0
    analysed = [(b["frames_analyzed"] - a["frames_analyzed"]) / elapsed for a, b in zip(s0, s1, strict=True)]
    decoded = [(b["frames_in"] - a["frames_in"]) / elapsed for a, b in zip(s0, s1, strict=True)]
    drops: dict[str, int] = {}
    for a, b in zip(s0, s1, strict=True):
        for reason, count in b["frames_dropped"].items():
            drops[reason] = drops.get(reason, 0) + count - a["frames_dropped"].get(reason, 0)
    cpu_pct = 100 * (c1 - c0) / elapsed
    return {
        "fps_analyzed_per_camera": round(sum(analysed) / n, 2),
        "fps_analyzed_min": round(min(analysed), 2),
        "fps_in_per_camera": round(sum(decoded) / n, 2),
        "drops_per_s": {k: round(v / elapsed, 2) for k, v in sorted(drops.items())},
        "reconnects": sum(b["reconnects"] for b in s1),
        "cpu_pct": round(cpu_pct, 1),
        "cpu_ms_per_frame_in": round(10 * cpu_pct / max(sum(decoded), 1e-9), 2),
        "rss_mb": round(rss / 2**20, 1),
        "rtsp_server_cpu_pct": rtsp_cpu(),
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "models": models,
    }


def _up(api: httpx.Client) -> bool:
    try:
        return api.get("/api/health").status_code == 200
    except httpx.HTTPError:
        return False


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.25)


# -- main --


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-worker":
        bare_worker(sys.argv[4:], float(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,4,8,16")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    clip = ensure_clip()
    cores = os.cpu_count() or 1
    print(f"{cores} cores, clip {clip.name}; {args.seconds:.0f} s per measurement", flush=True)
    rows = []
    for n in counts:
        bare = run_bare(n, clip, args.warmup, args.seconds)
        argus = run_argus(n, clip, args.warmup, args.seconds)
        # cameras the whole machine would sustain at this cost per camera (CPU-bound estimate)
        bare_cap = cores * 100 / (bare["cpu_pct"] / n) if bare["cpu_pct"] else None
        argus_cap = cores * 100 / (argus["cpu_pct"] / n) if argus["cpu_pct"] else None
        row = {
            "cameras": n,
            "bare": bare,
            "argus": argus,
            "est_max_cameras": {"bare": bare_cap, "argus": argus_cap},
        }
        rows.append(row)
        print(
            f"N={n:2d}  argus: {argus['fps_analyzed_per_camera']:.2f} analysed/s/cam (min "
            f"{argus['fps_analyzed_min']:.2f}), in {argus['fps_in_per_camera']:.1f}/s, drops/s "
            f"{argus['drops_per_s']}, CPU {argus['cpu_pct']:.0f}%, RSS {argus['rss_mb']:.0f} MB | "
            f"bare: {bare['fps_per_camera']:.1f} fps/cam, CPU {bare['cpu_pct']:.0f}% | est. max cameras "
            f"argus {argus_cap or 0:.0f} vs bare {bare_cap or 0:.0f} | load {argus['load_avg_1m']}",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "cores": cores,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "clip": {"width": W, "height": H, "fps": FPS, "bitrate_kbps": BITRATE_KBPS, "seconds": CLIP_S},
        "analysis_fps": ANALYSIS_FPS,
        "seconds": args.seconds,
        "load_avg_at_end": os.getloadavg(),
    }
    RESULTS.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
