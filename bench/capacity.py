"""Capacity: what one camera costs, mode by mode, on the same N real 720p15 H.264 streams over RTSP.

The streams are real footage (Debian opencv-doc's vtest.avi, pedestrians) encoded once as 1280x720, 15 FPS,
2-s GOP H.264 (x264 crf 23, like tests/support/footage.py) and served by the GStreamer RTSP fixture
without re-encoding (one fresh server per phase, so every client starts at the start of its clip). For
each N (default 16 and 32), the modes are measured back to back, `--runs` times (default 3, medians):

- `pyav_decode`  bare PyAV: demux and decode every frame (1 decoder thread, as Argus): the reference;
- `opencv_grab`  bare OpenCV `grab()` of every frame (what Argus did before packet-first streams);
- `demux`        PyAV demux only, nothing decoded: the floor of any design;
- `argus_all`    Argus's StreamSource with decode=all (+ a Sampler taking 5 FPS for analysis);
- `gated_calm`   StreamSource decode=gated on calm cameras: a still real frame, no motion, clean picture;
- `gated_noisy`  the same still frame with sensor noise (sd 6 grey levels, a night stand-in): packet
                 sizes say nothing there, so keyframes are decoded; also gives the false-open rate;
- `gated_active` decode=gated on cameras with continuous real motion;
- `gated_mix`    a realistic mix: 10 % active cameras (`--mix-active`, rounded, at least one: 2 of 16,
                 3 of 32), the rest calm;
- `clips`        gated_active while every camera writes an event clip (app/recording's ClipWriter,
                 remux from the packet ring, no re-encode): the cost of clip writing;
- `serve`        (not by default) the whole `argus serve`, cameras added over REST, VAD at 5 FPS: the
                 old end-to-end mode; `--counts` is kept as an alias of `--cameras`.

Argus modes include what the pipeline asks of the stream layer: a Sampler per camera taking `--analysis-fps`
(5) converted frames a second while it decodes (0: no Sampler); the analysers (VAD) are left out, except in
`serve`. Each bare/Argus mode runs in a worker process whose own CPU time (all threads, getrusage) over the
measurement window is the cost: reported per camera as % of one core (CPU seconds per camera-second x 100),
in ms per received frame, as % of a bare-decoded camera (`pyav_decode`), how many such cameras
`--budget-cores` (2) would sustain and that count's ratio to bare decode's; with the 1-minute load average
of each phase (the machine may be shared: compare modes of the same run) and the RTSP server's own CPU. A
mode whose cameras receive under 90 % of 15 FPS is flagged `saturated` (its cost is then understated).

The gate on real footage (`--onset-seconds`, 0 skips): cameras reading local copies of clips made by
footage_clip (a still real frame for 10-11.6 s, staggered against the GOP, then 8 s of walking people),
looping at their native rate, for crf and fixed-bitrate (2 Mbit/s CBR) encodings: onset latency = stream
time of each `source.gate_opens` entry minus the stream time of the first moving frame of that loop (read
from the opening packet's pts). False opens per camera-hour come from the gated_calm and gated_noisy
phases (every gate opening there is false: nothing moves).

Smoke run (about 3 minutes; the first run also encodes the 90-s clips once into ~/.cache/argus-bench,
about 3 more minutes on 2 cores):

    nice .venv/bin/python bench/capacity.py --cameras 4 --seconds 10 --warmup 3 --runs 1 --onset-seconds 30

Full measurement (an otherwise idle machine; about 35-45 minutes):

    .venv/bin/python bench/capacity.py --cameras 16,32 --seconds 20 --warmup 5 --runs 3 --onset-seconds 120

then push N (`--cameras 48,64 --modes pyav_decode,demux,gated_calm,gated_mix --runs 1`) until a mode
saturates or the RTSP server (≈ 0.7-1 % of a core per stream) becomes what limits. Writes
bench/results/capacity.json and capacity.png (per-camera CPU of each mode), and prints one line per phase
and per N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import cv2  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from tests.support.footage import VTEST, footage_clip  # noqa: E402
from tests.support.rtsp import RtspServer  # noqa: E402
from tests.support.server import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "capacity.json"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "argus-bench"
W, H, FPS, GOP_S = 1280, 720, 15, 2.0
ANALYSIS_FPS = 5.0
KEY = "bench-key-0123456789"
OPENCV_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
OPENCV_OPTIONS = "rtsp_transport;tcp|analyzeduration;500000|probesize;500000"
PYAV_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "500000", "probesize": "500000"}
HAS_CLIPS = importlib.util.find_spec("app.recording.clips") is not None
ONSET_STILL_S, ONSET_MOTION_S, ONSET_BITRATE = 10.0, 8.0, 2_000_000


@dataclass(frozen=True)
class Mode:
    name: str
    kind: str  # pyav | demux | opencv | argus | serve
    streams: str  # active | calm | noisy | mix
    decode: str = "all"
    clips: bool = False
    label: str = ""


MODES = {
    m.name: m
    for m in [
        Mode("pyav_decode", "pyav", "active", label="bare PyAV decode"),
        Mode("opencv_grab", "opencv", "active", label="bare OpenCV grab()"),
        Mode("demux", "demux", "active", label="PyAV demux only"),
        Mode("argus_all", "argus", "active", "all", label="Argus decode=all"),
        Mode("gated_calm", "argus", "calm", "gated", label="gated, calm"),
        Mode("gated_noisy", "argus", "noisy", "gated", label="gated, calm+noise"),
        Mode("gated_active", "argus", "active", "gated", label="gated, active"),
        Mode("gated_mix", "argus", "mix", "gated", label="gated, 10% active"),
        Mode("clips", "argus", "active", "gated", clips=True, label="gated active + clips"),
        Mode("serve", "serve", "active", label="argus serve (VAD 5 FPS)"),
    ]
}
DEFAULT_MODES = [m for m in MODES if m != "serve" and (m != "clips" or HAS_CLIPS)]


# -- clips (encoded once, cached) --


@dataclass(frozen=True)
class Clips:
    active: Path
    calm: Path
    noisy: Path


def motion_clip(directory: Path, seconds: int) -> Path:
    """`seconds` of continuous real motion: vtest.avi (80 s) played over and over, x264 as footage_clip."""
    path = directory / f"vtest-motion-{seconds}s-{W}x{H}-{FPS}fps-crf23.mkv"
    if path.is_file():
        return path
    if not VTEST.is_file():
        raise SystemExit(f"real footage missing ({VTEST}): apt-get install opencv-doc")
    print(f"encoding {path.name} once ...", flush=True)
    tmp = path.with_suffix(".part.mkv")
    cap = cv2.VideoCapture(str(VTEST))
    current, read = None, 0
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        g = str(round(GOP_S * FPS))
        stream.options = {"g": g, "keyint_min": g, "sc_threshold": "0", "preset": "veryfast"} | {
            "tune": "zerolatency",
            "bf": "0",
            "crf": "23",
        }
        for i in range(seconds * FPS):
            while read <= i * 10 // FPS:  # vtest is 10 FPS
                ok, image = cap.read()
                if not ok:  # the end: start over (one cut every 80 s, like a camera's scene change)
                    cap.release()
                    cap = cv2.VideoCapture(str(VTEST))
                    ok, image = cap.read()
                current = cv2.resize(image, (W, H), interpolation=cv2.INTER_AREA)
                read += 1
            frame = av.VideoFrame.from_ndarray(current, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    cap.release()
    tmp.rename(path)
    return path


def make_clips(max_cameras: int, warmup: float, seconds: float) -> Clips:
    """Clips longer than a phase (opens + warm-up + window), in 30-s steps from 90 s so they are reused."""
    need = warmup + seconds + 30 + 0.5 * max_cameras
    length = max(90, math.ceil(need / 30) * 30)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"clips of {length} s (encoded once into {CACHE}) ...", flush=True)
    calm = footage_clip(CACHE, still_s=length, motion_s=0.2, width=W, fps=FPS, gop_s=GOP_S)
    noisy = footage_clip(CACHE, still_s=length, motion_s=0.2, noise=6, width=W, fps=FPS, gop_s=GOP_S)
    return Clips(motion_clip(CACHE, length), calm.path, noisy.path)


def stream_groups(mode: Mode, n: int, clips: Clips, mix_active: float) -> list[tuple[Path, int, bool]]:
    """(clip, mounts, moving) per RTSP server of a phase."""
    if mode.streams == "mix":
        k = min(n, max(1, round(n * mix_active)))
        groups = [(clips.active, k, True), (clips.calm, n - k, False)]
        return [g for g in groups if g[1]]
    path = {"active": clips.active, "calm": clips.calm, "noisy": clips.noisy}[mode.streams]
    return [(path, n, mode.streams == "active")]


# -- workers: one process per phase, measuring its own CPU time --


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def window(
    counters: Callable[[], dict[str, list[int]]], warmup: float, seconds: float
) -> tuple[dict[str, list[float]], float, float]:
    """Per-camera rates of each counter over [warm-up end, + seconds], the CPU seconds and the elapsed."""
    time.sleep(warmup)
    before, cpu0, t0 = counters(), _cpu_self(), time.monotonic()
    time.sleep(seconds)
    after, cpu1, t1 = counters(), _cpu_self(), time.monotonic()
    elapsed = t1 - t0
    rates = {k: [(a - b) / elapsed for a, b in zip(after[k], before[k], strict=True)] for k in after}
    return rates, cpu1 - cpu0, elapsed


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def bare_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """PyAV (decode or demux only) or OpenCV grab() on every stream, one thread each, nothing else."""
    urls, kind = spec["urls"], spec["kind"]
    n = len(urls)
    packets, decoded = [0] * n, [0] * n
    opened: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def pyav_loop(i: int, url: str) -> None:
        container = av.open(url, "r", options=PYAV_OPTIONS, timeout=(15.0, 10.0))
        stream = container.streams.video[0]
        codec = stream.codec_context
        codec.thread_count = 1  # as Argus (decode_threads=1)
        opened.append(i)
        decode = kind == "pyav"
        for packet in container.demux(stream):
            if stop.is_set():
                break
            if packet.size == 0:
                continue
            packets[i] += 1
            if decode:
                decoded[i] += len(codec.decode(packet))
        container.close()

    def opencv_loop(i: int, url: str) -> None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 15000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10000]
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 2)
        if not cap.isOpened():
            raise RuntimeError("OpenCV could not open the stream")
        opened.append(i)
        while not stop.is_set() and cap.grab():
            packets[i] += 1
            decoded[i] += 1
        cap.release()

    def guarded(i: int, url: str) -> None:
        try:
            (opencv_loop if kind == "opencv" else pyav_loop)(i, url)
        except Exception as exc:
            errors.append(f"camera {i + 1}: {exc!r}")

    threads = [threading.Thread(target=guarded, args=(i, u), daemon=True) for i, u in enumerate(urls)]
    t_open = time.monotonic()
    for t in threads:
        t.start()
    wait_for(lambda: len(opened) == n or bool(errors), 120, "every stream open")
    if errors:
        raise RuntimeError("; ".join(errors))
    open_s = time.monotonic() - t_open
    rates, cpu_s, elapsed = window(lambda: {"packets": list(packets), "decoded": list(decoded)}, **_w(spec))
    stop.set()
    for t in threads:
        t.join(10)
    return {"rates": rates, "cpu_s": cpu_s, "elapsed": elapsed, "open_s": open_s, "errors": errors}


def _w(spec: dict[str, Any]) -> dict[str, float]:
    return {"warmup": spec["warmup"], "seconds": spec["seconds"]}


def argus_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Argus's own stream layer: a StreamSource per camera (+ a Sampler drained at analysis_fps)."""
    from app.config import Settings
    from app.stream.sampler import Sampler
    from app.stream.source import StreamSource

    urls = spec["urls"]
    with tempfile.TemporaryDirectory(prefix="argus-bench-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), log_level="warning")  # type: ignore[call-arg]
        sources = [StreamSource(i + 1, u, settings, decode=spec["decode"]) for i, u in enumerate(urls)]
        loop = asyncio.new_event_loop()
        samplers = [Sampler(s, spec["analysis_fps"]) for s in sources] if spec["analysis_fps"] else []
        analysed = [0] * len(sources)

        async def drain(i: int, sampler: Sampler) -> None:
            async for _frame in sampler:
                analysed[i] += 1

        tasks = [loop.create_task(drain(i, sampler)) for i, sampler in enumerate(samplers)]
        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()
        t_open = time.monotonic()
        for s in sources:
            s.start()
        try:
            wait_for(lambda: all(s.status().frames_in > 0 for s in sources), 120, "every camera streaming")
            open_s = time.monotonic() - t_open
            writers = start_clip_writers(sources, Path(tmp)) if spec["clips"] else []

            def counters() -> dict[str, list[int]]:
                st = [s.status() for s in sources]
                return {
                    "packets": [x.frames_in for x in st],
                    "decoded": [x.frames_decoded for x in st],
                    "converted": [x.frames_converted for x in st],
                    "analysed": list(analysed),
                    "opens": [s.activity.stats.opens for s in sources],
                    "probes": [s.activity.stats.probes for s in sources],
                }

            warm = spec["warmup"] if not writers else max(0.0, spec["warmup"] - 1.0)
            rates, cpu_s, elapsed = window(counters, warm, spec["seconds"])
            clips = finish_clip_writers(writers, elapsed)
            states = [s.status() for s in sources]
        finally:
            for sampler in samplers:
                sampler.close()
            for s in sources:
                s.stop()
            loop.call_soon_threadsafe(loop.stop)
            runner.join(5)
            for task in tasks:
                task.cancel()
    return {
        "rates": rates,
        "cpu_s": cpu_s,
        "elapsed": elapsed,
        "open_s": open_s,
        "gates_active_at_end": sum(x.gate == "active" for x in states),
        "reconnects": sum(x.reconnects for x in states),
        "clips": clips,
    }


def start_clip_writers(sources: list[Any], data_dir: Path) -> list[Any]:
    """One event clip per camera, from the pre-roll in its ring onwards, as the app's ClipRecorder does."""
    from app.recording.clips import ClipWriter

    writers = []
    for s in sources:
        tap = s.ring.tap(since=time.time() - s.ring.pre_roll_s)
        writer = ClipWriter(f"bench{s.camera_id}", s.camera_id, tap, data_dir, 300.0, lambda w: None)
        writer.start()
        writers.append(writer)
    time.sleep(1.0)  # the pre-roll backlog is written before the window (a burst every clip pays once)
    return writers


def finish_clip_writers(writers: list[Any], elapsed: float) -> dict[str, Any] | None:
    if not writers:
        return None
    for w in writers:
        w.abort()
    for w in writers:
        if w.thread is not None:
            w.thread.join(30)
    cpu = sum(w.cpu_s for w in writers)
    return {
        "writers": len(writers),
        "packets": sum(w.packets for w in writers),
        "bytes": sum(p.readable for w in writers for p in w.parts),
        "writer_cpu_s": round(cpu, 3),
        # the writer threads' own CPU time (incl. the pre-roll burst), per camera-second of the window
        "writer_cpu_pct_per_camera": round(100 * cpu / (len(writers) * elapsed), 3),
    }


def onset_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Gated sources on looping local clips (still, then motion): where each gate opening falls."""
    from app.config import Settings
    from app.stream.source import StreamSource

    with tempfile.TemporaryDirectory(prefix="argus-onset-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), log_level="warning")  # type: ignore[call-arg]
        cams = spec["cameras"]
        sources = [StreamSource(i + 1, c["path"], settings, decode="gated") for i, c in enumerate(cams)]
        # wall time -> (loop number, clip time) of every packet, read from a tap on each ring
        timeline: list[dict[float, tuple[int, float]]] = [{} for _ in sources]
        loops = [[0, -1.0] for _ in sources]  # current loop, last clip time
        taps = [s.ring.tap() for s in sources]

        def follow(i: int) -> None:
            for packet in taps[i]:
                t = float((packet.pts or 0) * packet.info.time_base)
                if t < loops[i][1]:
                    loops[i][0] += 1
                loops[i][1] = t
                timeline[i][packet.at] = (loops[i][0], t)

        readers = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(len(sources))]
        for r in readers:
            r.start()
        for s in sources:
            s.start()
        time.sleep(spec["seconds"])
        opens = [list(s.gate_opens) for s in sources]
        for s in sources:
            s.stop()
        for r in readers:
            r.join(5)
    out = []
    for cam, at_list, times, (last_loop, last_t) in zip(cams, opens, timeline, loops, strict=True):
        motion = cam["motion_starts_s"]
        seen = [times[a] for a in at_list if a in times]
        by_loop: dict[int, list[float]] = {}
        for loop_no, t in seen:
            by_loop.setdefault(loop_no, []).append(t)
        # loops that played motion long enough to count (one GOP + 0.5 s past its start)
        played = [k for k in range(last_loop + 1) if k < last_loop or last_t >= motion + cam["gop_s"] + 0.5]
        latencies, missed, early = [], 0, 0
        for k in played:
            after = [t - motion for t in by_loop.get(k, []) if t >= motion - 0.01]
            early += sum(1 for t in by_loop.get(k, []) if 1.0 < t < motion - 0.01)  # not the loop's cut
            if after:
                latencies.append(round(min(after), 3))
            else:
                missed += 1
        out.append({**cam, "loops": len(played), "latencies_s": latencies, "missed": missed, "early": early})
    return {"cameras": out}


def worker_main(spec: dict[str, Any]) -> None:
    os.environ.setdefault(OPENCV_OPTIONS_ENV, OPENCV_OPTIONS)
    kind = spec["kind"]
    if kind == "onset":
        result = onset_worker(spec)
    elif kind == "argus":
        result = argus_worker(spec)
    else:
        result = bare_worker(spec)
    result["rss_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)
    print(json.dumps(result), flush=True)


def run_worker(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{spec['kind']} worker failed: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


# -- phases --


def cpu_meter(pids: list[int]) -> Callable[[], float]:
    """CPU % (of one core) of these processes from now on (the RTSP servers' own share)."""
    procs = [psutil.Process(p) for p in pids]
    c0, t0 = sum(sum(p.cpu_times()[:2]) for p in procs), time.monotonic()

    def read() -> float:
        used = sum(sum(p.cpu_times()[:2]) for p in procs) - c0
        return round(100 * used / (time.monotonic() - t0), 1)

    return read


def run_phase(mode: Mode, n: int, clips: Clips, args: argparse.Namespace) -> dict[str, Any]:
    groups = stream_groups(mode, n, clips, args.mix_active)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(RtspServer(mounts=k, source=str(p))) for p, k, _ in groups]
        urls = [s.url(i + 1) for s, (_, k, _) in zip(servers, groups, strict=True) for i in range(k)]
        moving = [m for _, k, m in groups for _ in range(k)]
        rtsp_cpu = cpu_meter([s.proc.pid for s in servers if s.proc is not None])
        if mode.kind == "serve":
            data = run_serve(urls, args)
        else:
            spec = {
                "kind": mode.kind,
                "urls": urls,
                "decode": mode.decode,
                "clips": mode.clips,
                "analysis_fps": args.analysis_fps,
                "warmup": args.warmup,
                "seconds": args.seconds,
            }
            data = run_worker(spec, timeout=180 + args.warmup + args.seconds + 2 * n)
        data["rtsp_server_cpu_pct"] = rtsp_cpu()
    return phase_row(mode, n, data, moving)


def phase_row(mode: Mode, n: int, data: dict[str, Any], moving: list[bool]) -> dict[str, Any]:
    rates = data["rates"]
    packets = rates["packets"]
    fps_in = sum(packets) / n
    cpu_pct = 100 * data["cpu_s"] / data["elapsed"]
    row: dict[str, Any] = {
        "mode": mode.name,
        "cameras": n,
        "moving_cameras": sum(moving),
        "cpu_pct": round(cpu_pct, 1),
        "cpu_pct_per_camera": round(cpu_pct / n, 3),
        "cpu_ms_per_frame": round(1000 * data["cpu_s"] / max(sum(packets) * data["elapsed"], 1e-9), 3),
        "fps_in_per_camera": round(fps_in, 2),
        "fps_in_min": round(min(packets), 2),
        "decoded_fps_per_camera": round(sum(rates.get("decoded", [0])) / n, 2),
        "saturated": fps_in < 0.9 * FPS,
        "open_s": round(data.get("open_s", 0.0), 2),
        "rss_mb": data.get("rss_mb"),
        "rtsp_server_cpu_pct": data.get("rtsp_server_cpu_pct"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "window_s": round(data["elapsed"], 2),
    }
    if "opens" in rates:
        opens = [r * data["elapsed"] for r in rates["opens"]]
        row["gate"] = {
            "opens": round(sum(opens)),
            "opens_on_still_cameras": round(sum(o for o, m in zip(opens, moving, strict=True) if not m)),
            "still_camera_hours": round(moving.count(False) * data["elapsed"] / 3600, 5),
            "probes": round(sum(r * data["elapsed"] for r in rates["probes"])),
            "active_at_end": data.get("gates_active_at_end"),
            "analysed_fps_per_camera": round(sum(rates["analysed"]) / n, 2),
            "converted_fps_per_camera": round(sum(rates["converted"]) / n, 2),
        }
        row["reconnects"] = data.get("reconnects", 0)
    for key in ("clips", "analysed_fps_per_camera", "drops_per_s", "models"):
        if data.get(key) is not None:
            row[key] = data[key]
    return row


# -- serve: the whole app over REST (the old end-to-end mode) --


def run_serve(urls: list[str], args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="argus-bench-") as tmp:
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
            return measure_serve(urls, f"http://127.0.0.1:{port}", server, args)
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


def measure_serve(
    urls: list[str], base: str, server: subprocess.Popen[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    proc = psutil.Process(server.pid)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as api:
        wait_for(lambda: _up(api), 60, "argus to answer /api/health")
        ids = []
        for i, url in enumerate(urls):
            body = {"name": f"bench-{i + 1}", "url": url, "analysis_fps": args.analysis_fps or ANALYSIS_FPS}
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

        t_open = time.monotonic()
        wait_for(all_streaming, 120, "all cameras streaming")
        open_s = time.monotonic() - t_open
        time.sleep(args.warmup)
        s0, c0, t0 = statuses(), sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(args.seconds)
        s1, c1, t1 = statuses(), sum(proc.cpu_times()[:2]), time.monotonic()
        rss = proc.memory_info().rss
        models = api.get("/api/models").json()
    elapsed = t1 - t0

    def rate(key: str) -> list[float]:
        return [(b.get(key, 0) - a.get(key, 0)) / elapsed for a, b in zip(s0, s1, strict=True)]

    drops: dict[str, int] = {}
    for a, b in zip(s0, s1, strict=True):
        for reason, count in b["frames_dropped"].items():
            drops[reason] = drops.get(reason, 0) + count - a["frames_dropped"].get(reason, 0)
    analysed = rate("frames_analyzed")
    return {
        "rates": {"packets": rate("frames_in"), "decoded": [x["decoded_fps"] for x in s1]},
        "cpu_s": c1 - c0,
        "elapsed": elapsed,
        "open_s": open_s,
        "rss_mb": round(rss / 2**20, 1),
        "analysed_fps_per_camera": round(sum(analysed) / len(ids), 2),
        "drops_per_s": {k: round(v / elapsed, 2) for k, v in sorted(drops.items())},
        "models": [{k: m.get(k) for k in ("name", "kind", "provider", "max_batch")} for m in models],
    }


def _up(api: httpx.Client) -> bool:
    try:
        return api.get("/api/health").status_code == 200
    except httpx.HTTPError:
        return False


# -- the gate on real footage --


def run_onset(args: argparse.Namespace) -> dict[str, Any]:
    """Onset latency on crf and fixed-bitrate footage, motion starts staggered across the GOP."""
    cams = []
    for kind, bitrate in (("crf", None), ("cbr_2mbit", ONSET_BITRATE)):
        for k in range(args.onset_cameras):
            still = ONSET_STILL_S + round(k * GOP_S / max(args.onset_cameras, 1), 1)
            clip = footage_clip(
                CACHE, still_s=still, motion_s=ONSET_MOTION_S, width=W, fps=FPS, bitrate=bitrate
            )
            cams.append(
                {
                    "kind": kind,
                    "path": str(clip.path),
                    "motion_starts_s": clip.motion_starts_s,
                    "gop_s": GOP_S,
                }
            )
    data = run_worker(
        {"kind": "onset", "cameras": cams, "seconds": args.onset_seconds}, args.onset_seconds + 120
    )
    out: dict[str, Any] = {"seconds": args.onset_seconds, "load_avg_1m": round(os.getloadavg()[0], 2)}
    for kind in ("crf", "cbr_2mbit"):
        rows = [c for c in data["cameras"] if c["kind"] == kind]
        lat = sorted(x for c in rows for x in c["latencies_s"])
        bound = GOP_S + 0.5
        out[kind] = {
            "onsets": len(lat),
            "loops_with_motion": sum(c["loops"] for c in rows),
            "missed": sum(c["missed"] for c in rows),
            "early_opens_in_still": sum(c["early"] for c in rows),
            "latency_s": distribution(lat),
            "within_gop_plus_0_5_s": round(sum(x <= bound for x in lat) / len(lat), 3) if lat else None,
            "all_s": lat,
        }
    return out


def distribution(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    q = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else [values[0]] * 9
    return {
        "min": round(values[0], 3),
        "median": round(statistics.median(values), 3),
        "p90": round(q[8], 3),
        "max": round(values[-1], 3),
    }


def false_opens(rows: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """Every opening on a still camera is false; summed over every run and N (not a median)."""
    picked = [r["gate"] for r in rows if r["mode"] == mode and "gate" in r]
    if not picked:
        return None
    opens = sum(g["opens_on_still_cameras"] for g in picked)
    hours = sum(g["still_camera_hours"] for g in picked)
    return {"opens": opens, "camera_hours": round(hours, 4), "per_camera_hour": round(opens / hours, 2)}


# -- summaries --


def summarise(n: int, rows: list[dict[str, Any]], modes: list[str], budget: float) -> dict[str, Any]:
    """Medians over the runs of each mode at N cameras, and the ratios to bare decode."""
    per_mode: dict[str, Any] = {}
    for name in modes:
        mine = [r for r in rows if r["mode"] == name and r["cameras"] == n]
        if not mine:
            continue
        cost = statistics.median(r["cpu_pct_per_camera"] for r in mine)
        per_mode[name] = {
            "label": MODES[name].label,
            "moving_cameras": mine[0]["moving_cameras"],
            "cpu_pct_per_camera": round(cost, 3),
            "cpu_ms_per_frame": round(statistics.median(r["cpu_ms_per_frame"] for r in mine), 3),
            "fps_in_per_camera": round(statistics.median(r["fps_in_per_camera"] for r in mine), 2),
            "decoded_fps_per_camera": round(statistics.median(r["decoded_fps_per_camera"] for r in mine), 2),
            "saturated": any(r["saturated"] for r in mine),
            "load_avg_1m": [r["load_avg_1m"] for r in mine],
            "rtsp_server_cpu_pct": statistics.median(r["rtsp_server_cpu_pct"] or 0 for r in mine),
            "rtsp_server_cpu_pct_per_stream": round(
                statistics.median((r["rtsp_server_cpu_pct"] or 0) / n for r in mine), 3
            ),
            "cameras_on_budget": round(budget * 100 / cost, 1) if cost > 0 else None,
            "runs": len(mine),
        }
    bare = per_mode.get("pyav_decode") or per_mode.get("opencv_grab")
    for stats in per_mode.values():
        if bare and stats["cpu_pct_per_camera"] > 0:
            stats["pct_of_bare"] = round(100 * stats["cpu_pct_per_camera"] / bare["cpu_pct_per_camera"], 1)
            stats["x_bare_cameras"] = round(bare["cpu_pct_per_camera"] / stats["cpu_pct_per_camera"], 2)
    return per_mode


def targets(per_mode: dict[str, Any]) -> dict[str, Any]:
    """Issue 8's targets on this N (x_bare_cameras: how many times bare decode's camera count fits)."""
    checks = {
        "gated_calm_pct_of_bare<=15": ("gated_calm", "pct_of_bare", lambda v: v <= 15),
        "gated_calm_x_bare>=6": ("gated_calm", "x_bare_cameras", lambda v: v >= 6),
        "gated_active_x_bare>=0.65": ("gated_active", "x_bare_cameras", lambda v: v >= 0.65),
        "gated_mix_x_bare>=3.5": ("gated_mix", "x_bare_cameras", lambda v: v >= 3.5),
    }
    out: dict[str, Any] = {}
    for name, (mode, key, ok) in checks.items():
        value = per_mode.get(mode, {}).get(key)
        out[name] = None if value is None else {"value": value, "met": bool(ok(value))}
    clips, active = per_mode.get("clips"), per_mode.get("gated_active")
    if clips and active and active["cpu_pct_per_camera"] > 0:
        added = 100 * (clips["cpu_pct_per_camera"] / active["cpu_pct_per_camera"] - 1)
        out["clip_writing_adds<5pct"] = {"value": round(added, 1), "met": added < 5}
    return out


def clip_figure(
    rows: list[dict[str, Any]], per_mode_by_n: dict[int, dict[str, Any]]
) -> dict[str, Any] | None:
    """Clip writing: the writer threads' own CPU, and the whole process's difference to gated_active."""
    out = {}
    for n, per_mode in per_mode_by_n.items():
        mine = [r for r in rows if r["mode"] == "clips" and r["cameras"] == n and "clips" in r]
        if not mine:
            continue
        writer = statistics.median(r["clips"]["writer_cpu_pct_per_camera"] for r in mine)
        written = statistics.median(r["clips"]["bytes"] / r["clips"]["writers"] / r["window_s"] for r in mine)
        active = per_mode.get("gated_active", {}).get("cpu_pct_per_camera")
        out[str(n)] = {
            "writer_cpu_pct_per_camera": round(writer, 3),
            "writer_pct_of_gated_active": round(100 * writer / active, 1) if active else None,
            "process_delta_pct_of_gated_active": targets(per_mode).get("clip_writing_adds<5pct"),
            "mb_per_camera_minute": round(written * 60 / 2**20, 2),
        }
    return out or None


def phase_line(row: dict[str, Any], run: int) -> str:
    gate = row.get("gate")
    extra = f", gate opens {gate['opens']}, decoded {row['decoded_fps_per_camera']}/s" if gate else ""
    sat = " SATURATED" if row["saturated"] else ""
    return (
        f"  run {run} N={row['cameras']:2d} {row['mode']:<12} {row['cpu_pct_per_camera']:6.2f} % core/camera "
        f"({row['cpu_ms_per_frame']:.2f} ms/frame), in {row['fps_in_per_camera']:.1f} fps/cam{extra}, "
        f"rtsp {row['rtsp_server_cpu_pct']} %, load {row['load_avg_1m']}{sat}"
    )


def n_line(n: int, per_mode: dict[str, Any], budget: float) -> str:
    parts = []
    for name, s in per_mode.items():
        pct = f" {s['pct_of_bare']:.0f}%" if "pct_of_bare" in s else ""
        parts.append(f"{name} {s['cpu_pct_per_camera']:.2f}{pct} ({s['cameras_on_budget'] or 0:.0f})")
    loads = [x for s in per_mode.values() for x in s["load_avg_1m"]]
    return (
        f"N={n}: % core per camera [% of bare] (cameras on {budget:g} cores): "
        + ", ".join(parts)
        + f" | load {min(loads):.1f}-{max(loads):.1f}"
    )


# -- plot --


def plot(per_mode_by_n: dict[int, dict[str, Any]], path: Path, title: str) -> str:
    modes = list(dict.fromkeys(m for pm in per_mode_by_n.values() for m in pm))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return plot_with_opencv(per_mode_by_n, modes, path, title)
    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.8 / max(1, len(per_mode_by_n))
    for j, (n, per_mode) in enumerate(per_mode_by_n.items()):
        xs = [i + (j - (len(per_mode_by_n) - 1) / 2) * width for i in range(len(modes))]
        ys = [per_mode.get(m, {}).get("cpu_pct_per_camera", 0) for m in modes]
        bars = ax.bar(xs, ys, width, label=f"N = {n}")
        for bar, m in zip(bars, modes, strict=True):
            pct = per_mode.get(m, {}).get("pct_of_bare")
            if pct is not None:
                ax.annotate(
                    f"{pct:.0f}%",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(range(len(modes)), [MODES[m].label for m in modes], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("CPU per camera (% of one core)  [label: % of bare PyAV decode]")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return "matplotlib"


def plot_with_opencv(
    per_mode_by_n: dict[int, dict[str, Any]], modes: list[str], path: Path, title: str
) -> str:
    img_w, img_h, left, bottom = 1100, 560, 60, 140
    img = np.full((img_h, img_w, 3), 255, np.uint8)
    top = max(
        (pm.get(m, {}).get("cpu_pct_per_camera", 0) for pm in per_mode_by_n.values() for m in modes),
        default=1,
    )
    scale = (img_h - bottom - 40) / max(top, 1e-6)
    colours = [(180, 110, 30), (40, 130, 240), (60, 160, 60), (40, 40, 200)]
    slot = (img_w - left - 20) / max(1, len(modes))
    width = slot * 0.8 / max(1, len(per_mode_by_n))
    for i, m in enumerate(modes):
        for j, per_mode in enumerate(per_mode_by_n.values()):
            v = per_mode.get(m, {}).get("cpu_pct_per_camera", 0)
            x0 = int(left + i * slot + slot * 0.1 + j * width)
            y0 = int(img_h - bottom - v * scale)
            cv2.rectangle(img, (x0, y0), (int(x0 + width) - 2, img_h - bottom), colours[j % 4], -1)
            cv2.putText(img, f"{v:.2f}", (x0, y0 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
        cv2.putText(
            img,
            MODES[m].label[:22],
            (int(left + i * slot), img_h - bottom + 18 + 14 * (i % 2)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.38,
            (0, 0, 0),
            1,
        )
    legend = "  ".join(f"N={n}" for n in per_mode_by_n)
    cv2.putText(
        img,
        "CPU per camera (% of one core); " + legend,
        (left, 25),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (0, 0, 0),
        1,
    )
    cv2.putText(img, title[:150], (5, img_h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)
    return "opencv"


# -- main --


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cameras", "--counts", default="16,32", help="comma-separated N (default 16,32)")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"of {', '.join(MODES)}")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per phase")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3, help="repetitions; figures are medians")
    parser.add_argument("--mix-active", type=float, default=0.10, help="share of active cameras in gated_mix")
    parser.add_argument("--analysis-fps", type=float, default=ANALYSIS_FPS, help="Sampler rate; 0: none")
    parser.add_argument("--budget-cores", type=float, default=2.0)
    parser.add_argument("--onset-seconds", type=float, default=120.0, help="gate onset measurement; 0 skips")
    parser.add_argument("--onset-cameras", type=int, default=5, help="clips per encoding (crf, CBR)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.counts = [int(c) for c in str(args.cameras).split(",") if c]
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.mode_list if m not in MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}; known: {', '.join(MODES)}")
    if "clips" in args.mode_list and not HAS_CLIPS:
        parser.error("mode clips needs app/recording")
    return args


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker_main(json.loads(sys.argv[2]))
        return
    args = parse_args()
    cores = os.cpu_count() or 1
    clips = make_clips(max(args.counts), args.warmup, args.seconds)
    print(
        f"{cores} cores, load {os.getloadavg()[0]:.1f}; modes {', '.join(args.mode_list)}; N {args.counts}; "
        f"{args.runs} run(s) of {args.seconds:g} s after {args.warmup:g} s warm-up",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    per_mode_by_n: dict[int, dict[str, Any]] = {}
    for n in args.counts:
        for run in range(1, args.runs + 1):
            for name in args.mode_list:
                row = run_phase(MODES[name], n, clips, args)
                row["run"] = run
                rows.append(row)
                print(phase_line(row, run), flush=True)
        per_mode_by_n[n] = summarise(n, rows, args.mode_list, args.budget_cores)
        print(n_line(n, per_mode_by_n[n], args.budget_cores), flush=True)
    onset = run_onset(args) if args.onset_seconds > 0 else None
    gate = {
        "onset": onset,
        "false_opens": {
            "noisy_still": false_opens(rows, "gated_noisy"),
            "clean_still": false_opens(rows, "gated_calm"),
        },
    }
    if onset:
        for kind in ("crf", "cbr_2mbit"):
            o = onset[kind]
            print(
                f"gate onset ({kind}): {o['onsets']} of {o['loops_with_motion']} motion starts, latency s "
                f"{o['latency_s']}, within 1 GOP + 0.5 s: {o['within_gop_plus_0_5_s']}",
                flush=True,
            )
    print(f"false opens per camera-hour: {gate['false_opens']}", flush=True)
    meta = {
        "cores": cores,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "opencv": cv2.__version__,
        "streams": {
            "width": W,
            "height": H,
            "fps": FPS,
            "gop_s": GOP_S,
            "encoding": "x264 crf 23, vtest.avi",
        },
        "clips": {k: Path(v).name for k, v in vars(clips).items()},
        "analysis_fps": args.analysis_fps,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "runs": args.runs,
        "mix_active": args.mix_active,
        "budget_cores": args.budget_cores,
        "load_avg_at_end": os.getloadavg(),
        "argv": sys.argv[1:],
    }
    result = {
        "meta": meta,
        "summary": {str(n): pm for n, pm in per_mode_by_n.items()},
        "targets": {str(n): targets(pm) for n, pm in per_mode_by_n.items()},
        "clip_writing": clip_figure(rows, per_mode_by_n),
        "gate": gate,
        "phases": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    title = f"{cores} cores, {args.runs} run(s) x {args.seconds:g} s, load {meta['load_avg_at_end'][0]:.1f}"
    result["plot"] = {"path": png.name, "drawn_with": plot(per_mode_by_n, png, title)}
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
