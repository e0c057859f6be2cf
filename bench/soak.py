"""Soak: N cameras of real RTSP for a long run while things go wrong, watching for leaks and losses.

- `argus serve` (SQLite) with N cameras (VAD at 5 FPS) on two GStreamer RTSP servers serving one
  pre-encoded H.264 clip without re-encoding (tests/support/rtsp_server.py); the clip is as long as the
  run, so no stream ends by itself.
- The "flaky" server (a quarter of the cameras) is stopped for `--outage-s` every `--restart-every-s`:
  each outage must end with every one of its cameras streaming again (recovery time recorded).
- The webhook receiver is down for `--flap-down-s` every `--flap-every-s`; a rule alerts on every event.
- Events are also ingested over the API at `--ingest-per-s`.
- Every `--sample-s`: the server's RSS, open FDs and threads (psutil), cameras streaming, events, alerts.
- At the end (receiver up, outage over) it waits for the outbox to drain, then checks: every ingest
  answered 202 is stored, every camera event counted by the server is stored, every event has its
  alert, every alert reached the receiver (at least once, signed).

Writes bench/results/soak.json and soak.png, prints one line; exits 1 when an outage did not recover or
anything was lost. Growth is measured after a warm-up (target: RSS and FDs < 5 % growth).

    .venv/bin/python bench/soak.py [--cameras 16] [--minutes 30] [--label NAME]
    .venv/bin/python bench/soak.py --cameras 4 --minutes 2 --restart-every-s 40 --flap-every-s 30 \
        --label soak-smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from tests.support.rtsp import SYSTEM_PYTHON, RtspServer  # noqa: E402
from tests.support.server import free_port  # noqa: E402
from tests.support.webhook_receiver import WebhookReceiver  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "argus-bench"
W, H, FPS = 640, 360, 15
BURST_EVERY_S, BURST_S = 30, 5  # motion in the clip: an anomaly episode per camera every 30 s
KEY = "soak-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}

ENCODER = """
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
p = Gst.parse_launch(
    "fdsrc fd=0 ! rawvideoparse width=%d height=%d format=i420 framerate=%d/1 "
    "! x264enc speed-preset=veryfast bitrate=600 key-int-max=%d bframes=0 "
    "! video/x-h264,profile=main ! h264parse ! matroskamux ! filesink location=" + sys.argv[1])
p.set_state(Gst.State.PLAYING)
msg = p.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
p.set_state(Gst.State.NULL)
sys.exit(0 if msg.type == Gst.MessageType.EOS else 1)
"""


# -- the clip --


def clip_frames(seconds: int) -> Any:
    """The demo's street with sensor noise; cars cross for BURST_S every BURST_EVERY_S."""
    from app.demo import _background, _noisy

    backgrounds = _noisy(_background("ARGUS SOAK"), sigma=2.0, seed=5)
    for i in range(seconds * FPS):
        t = i / FPS
        frame = backgrounds[i % len(backgrounds)]
        phase = t % BURST_EVERY_S
        if phase >= BURST_EVERY_S - BURST_S:
            frame = frame.copy()
            _draw_crossing(frame, (phase - (BURST_EVERY_S - BURST_S)) / BURST_S)
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)


def _draw_crossing(frame: np.ndarray, progress: float) -> None:
    """A car-sized block crossing the picture left to right as `progress` goes 0 -> 1 (in place)."""
    h, w = frame.shape[:2]
    x = int(progress * (w + 160)) - 160
    cv2.rectangle(frame, (x, h // 2 - 20), (x + 160, h // 2 + 70), (235, 235, 235), -1)
    cv2.rectangle(frame, (x + 20, h // 2 - 50), (x + 120, h // 2 - 20), (30, 30, 200), -1)


def ensure_clip(seconds: int) -> Path:
    seconds = max(60, -(-seconds // 60) * 60)  # whole minutes: one cached clip serves nearby lengths
    clip = CACHE / f"soak2-{W}x{H}-{FPS}fps-{seconds}s.mkv"  # soak2: the high-contrast crossing
    if clip.is_file() and clip.stat().st_size > 0:
        return clip
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = clip.with_suffix(".partial.mkv")
    print(f"encoding a {seconds}-s clip once into {clip} ...", flush=True)
    enc = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", ENCODER % (W, H, FPS, 2 * FPS), str(tmp)], stdin=subprocess.PIPE
    )
    assert enc.stdin is not None
    for yuv in clip_frames(seconds):
        enc.stdin.write(yuv.tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        raise RuntimeError("clip encoding failed (GStreamer x264enc)")
    tmp.replace(clip)
    return clip


# -- what happens during the run --


@dataclass
class Outage:
    started: float  # seconds since the start of the run
    restarted: float | None = None
    recovered_after_s: float | None = None  # from the server's restart to every camera streaming again
    cameras: list[int] = field(default_factory=list)


@dataclass
class Flap:
    down_at: float
    up_at: float | None = None


class Ingester(threading.Thread):
    """Posts events at a steady rate; keeps the ids answered 202 and counts every other answer."""

    def __init__(self, url: str, per_s: float) -> None:
        super().__init__(name="soak.ingest", daemon=True)
        self.url, self.period = url, 1.0 / per_s if per_s > 0 else 0.0
        self.accepted: list[str] = []
        self.other: dict[str, int] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        if not self.period:
            return
        with httpx.Client(base_url=self.url, headers=AUTH, timeout=30) as api:
            n = 0
            while not self.stop_event.wait(self.period):
                try:
                    r = api.post(
                        "/api/events", json={"type": "soak_ingest", "severity": "high", "data": {"n": n}}
                    )
                    key = str(r.status_code)
                    if r.status_code == 202:
                        self.accepted.append(r.json()["id"])
                        continue
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                self.other[key] = self.other.get(key, 0) + 1
                n += 1


class Soak:
    def __init__(self, args: argparse.Namespace, url: str, server: psutil.Process) -> None:
        self.args = args
        self.url = url
        self.server = server
        self.api = httpx.Client(base_url=url, headers=AUTH, timeout=30)
        self.t0 = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self.outages: list[Outage] = []
        self.flaps: list[Flap] = []

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def statuses(self, ids: list[int]) -> list[dict[str, Any]]:
        return [self.api.get(f"/api/cameras/{i}/status").json() for i in ids]

    def sample(self, camera_ids: list[int]) -> None:
        with self.server.oneshot():
            mem, fds, threads = (
                self.server.memory_info().rss,
                self.server.num_fds(),
                self.server.num_threads(),
            )
            cpu = sum(self.server.cpu_times()[:2])
        states = [s.get("state") for s in self.statuses(camera_ids)]
        health = self.api.get("/api/health").json()
        self.samples.append(
            {
                "t": self.now(),
                "rss_mb": round(mem / 2**20, 1),
                "fds": fds,
                "threads": threads,
                "cpu_s": round(cpu, 1),
                "streaming": states.count("streaming"),
                "events_flushed": health.get("event_logger", {}).get("flushed"),
                "ingested": health.get("ingest", {}).get("stored"),
                "alerts_created": health.get("alerts", {}).get("created"),
                "health": health.get("status"),
            }
        )

    def recovered(self, ids: list[int], since: dict[int, int]) -> bool:
        """Every camera streaming and past the frame count it had when its server came back."""
        return all(
            s.get("state") == "streaming" and s.get("frames_in", 0) > since[s["camera_id"]]
            for s in self.statuses(ids)
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    duration = args.minutes * 60
    clip = ensure_clip(int(duration + 120))
    flaky_n = max(1, args.cameras // 4)
    steady_n = args.cameras - flaky_n
    with (
        tempfile.TemporaryDirectory(prefix="argus-soak-") as tmp,
        RtspServer(mounts=max(steady_n, 1), width=W, height=H, fps=FPS, source=str(clip)) as steady,
        RtspServer(mounts=flaky_n, width=W, height=H, fps=FPS, source=str(clip)) as flaky,
        WebhookReceiver() as receiver,
    ):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
        env.update(
            {
                "ARGUS_DATA_DIR": tmp,
                "ARGUS_API_KEYS": KEY,
                "ARGUS_LOG_LEVEL": "warning",
                # a receiver back after a flap gets its backlog within ~20 s, not after 10 minutes
                "ARGUS_WEBHOOK_MAX_BACKOFF_S": "20",
                "ARGUS_WEBHOOK_BREAKER_RESET_S": "5",
                "ARGUS_DIGEST_INTERVAL_S": "10",  # medium/low alerts (camera anomalies) go out in digests
            }
        )
        log_path = Path(tmp) / "server.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                return drive(
                    args, f"http://127.0.0.1:{port}", proc, steady, flaky, receiver, steady_n, flaky_n
                )
            except Exception:
                print(log_path.read_text()[-3000:], file=sys.stderr)
                raise
            finally:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def drive(
    args: argparse.Namespace,
    url: str,
    proc: subprocess.Popen[bytes],
    steady: RtspServer,
    flaky: RtspServer,
    receiver: WebhookReceiver,
    steady_n: int,
    flaky_n: int,
) -> dict[str, Any]:
    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"argus serve exited with {proc.returncode}")
        return up(url)

    wait(started, 90, "argus to answer /api/health")
    soak = Soak(args, url, psutil.Process(proc.pid))
    api = soak.api
    hook = api.post("/api/webhooks", json={"name": "soak", "url": receiver.url, "secret": receiver.secret})
    hook.raise_for_status()
    rule = {
        "name": "everything",
        "webhook_ids": [hook.json()["id"]],
        "dedup_window_s": 0,
        "min_severity": "low",
    }
    api.post("/api/alert-rules", json=rule).raise_for_status()
    urls = [steady.url(i + 1) for i in range(steady_n)] + [flaky.url(i + 1) for i in range(flaky_n)]
    ids = []
    for n, cam_url in enumerate(urls):
        r = api.post("/api/cameras", json={"name": f"soak-{n + 1}", "url": cam_url, "analysis_fps": 5})
        r.raise_for_status()
        ids.append(r.json()["id"])
    flaky_ids = ids[steady_n:]
    wait(lambda: soak.recovered(ids, dict.fromkeys(ids, 0)), 90, "every camera streaming")
    soak.t0 = time.monotonic()
    ingester = Ingester(url, args.ingest_per_s)
    ingester.start()

    duration = args.minutes * 60
    next_sample, next_outage, next_flap = 0.0, args.restart_every_s, args.flap_every_s
    outage: Outage | None = None
    since: dict[int, int] = {}
    flap: Flap | None = None
    while (t := soak.now()) < duration or outage is not None:
        if t >= next_sample:
            soak.sample(ids)
            next_sample += args.sample_s
        if outage is None and t >= next_outage and t < duration:
            outage = Outage(started=t, cameras=flaky_ids)
            flaky.stop()
            soak.outages.append(outage)
        elif outage is not None and outage.restarted is None and t >= outage.started + args.outage_s:
            flaky.start()
            outage.restarted = soak.now()
            since = {s["camera_id"]: s.get("frames_in", 0) for s in soak.statuses(flaky_ids)}
        elif outage is not None and outage.restarted is not None:
            if soak.recovered(flaky_ids, since):
                outage.recovered_after_s = round(soak.now() - outage.restarted, 1)
                outage, next_outage = None, t + args.restart_every_s
            elif t - outage.restarted > args.recover_timeout_s:
                outage, next_outage = None, t + args.restart_every_s  # recorded as not recovered
        if flap is None and t >= next_flap and t < duration:
            receiver.stop()
            flap = Flap(down_at=t)
            soak.flaps.append(flap)
        elif flap is not None and t >= flap.down_at + args.flap_down_s:
            receiver.start()
            flap.up_at = t
            flap, next_flap = None, t + args.flap_every_s
        time.sleep(0.5)
    if flap is not None:
        receiver.start()
        flap.up_at = soak.now()
    ingester.stop_event.set()
    ingester.join(30)
    soak.sample(ids)
    return account(soak, ingester, receiver)


def account(soak: Soak, ingester: Ingester, receiver: WebhookReceiver) -> dict[str, Any]:
    """Drain, then count: what the server accepted or produced against what is stored and delivered."""
    api = soak.api
    time.sleep(3)  # the logger's flush window (1 s) and the alert engine's batch
    produced = camera_events_produced(api)

    def drained() -> bool:
        alerts = pages(api, "/api/alerts")
        return bool(alerts) and {a["id"] for a in alerts} <= receiver.delivered_alert_ids()

    drain_started = time.monotonic()
    with contextlib.suppress(TimeoutError):  # what is not delivered by then is reported as lost
        wait(drained, soak.args.drain_timeout_s, "every alert delivered")
    drain_s = round(time.monotonic() - drain_started, 1)
    events = pages(api, "/api/events")
    alerts = pages(api, "/api/alerts")
    event_ids = {e["id"] for e in events}
    camera_events = [e for e in events if e["source"] != "api"]
    alert_ids = {a["id"] for a in alerts}
    delivered = receiver.delivered_alert_ids()
    return {
        "events": {
            "ingest_accepted": len(ingester.accepted),
            "ingest_other_answers": ingester.other,
            "ingest_lost": len(set(ingester.accepted) - event_ids),
            "camera_produced": produced,
            "camera_stored": len(camera_events),
            "camera_lost": max(0, produced - len(camera_events)),
            "without_alert": len(event_ids - {a["event_id"] for a in alerts}),
        },
        "alerts": {
            "created": len(alert_ids),
            "delivered": len(alert_ids & delivered),
            "lost": len(alert_ids - delivered),
            "requests": len(receiver.received),
            "all_signed": receiver.all_signed(),
            "drain_s": drain_s,
        },
        "samples": soak.samples,
        "outages": [asdict(o) for o in soak.outages],
        "flaps": [asdict(f) for f in soak.flaps],
    }


def camera_events_produced(api: httpx.Client) -> int:
    """argus_events_total: every episode the pipelines opened, plus the ingested ones."""
    total = 0.0
    for line in api.get("/metrics").text.splitlines():
        if line.startswith("argus_events_total{"):
            labels, value = line.rsplit(" ", 1)
            if 'type="soak_ingest"' not in labels:
                total += float(value)
    return int(total)


def pages(api: httpx.Client, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get(path, params={"limit": 500, **({"cursor": cursor} if cursor else {})}).json()
        items += page["items"]
        if not (cursor := page.get("next_cursor")):
            return items


def up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(1.0)


# -- figures --


def growth(samples: list[dict[str, Any]], key: str, warmup_s: float) -> dict[str, float] | None:
    """Mean of the last three samples against the first three after warm-up."""
    after = [s[key] for s in samples if s["t"] >= warmup_s]
    if len(after) < 4:
        return None
    first, last = statistics.mean(after[:3]), statistics.mean(after[-3:])
    return {
        "after_warmup": round(first, 1),
        "end": round(last, 1),
        "pct": round(100 * (last - first) / first, 1),
    }


def plot(result: dict[str, Any], path: Path) -> str:
    samples = result["samples"]
    t = [s["t"] / 60 for s in samples]
    series = [
        ("rss_mb", "RSS (MB)"),
        ("fds", "open FDs"),
        ("threads", "threads"),
        ("streaming", "cameras streaming"),
    ]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return plot_with_opencv(samples, series, result, path)
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 9), sharex=True)
    for ax, (key, label) in zip(axes, series, strict=True):
        ax.plot(t, [s[key] for s in samples], marker=".", lw=1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for o in result["outages"]:
            ax.axvspan(o["started"] / 60, (o["restarted"] or o["started"]) / 60, color="red", alpha=0.15)
        for f in result["flaps"]:
            ax.axvspan(f["down_at"] / 60, (f["up_at"] or f["down_at"]) / 60, color="orange", alpha=0.15)
        ax.axvline(result["warmup_s"] / 60, color="grey", ls="--", lw=0.8)
    axes[-1].set_xlabel(
        "minutes (red: RTSP server down, orange: webhook receiver down, dashed: end of warm-up)"
    )
    fig.suptitle(textwrap.fill(result["summary"], 140), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return "matplotlib"


def plot_with_opencv(
    samples: list[dict[str, Any]], series: list[tuple[str, str]], result: dict[str, Any], path: Path
) -> str:
    width, row = 1000, 200
    img = np.full((row * len(series) + 40, width, 3), 255, np.uint8)
    span = max(samples[-1]["t"], 1.0)
    for n, (key, label) in enumerate(series):
        top = 20 + n * row
        values = [float(s[key]) for s in samples]
        lo, hi = min(values), max(values)
        hi = hi if hi > lo else lo + 1
        pts = [
            (
                60 + int((s["t"] / span) * (width - 80)),
                top + row - 30 - int((v - lo) / (hi - lo) * (row - 60)),
            )
            for s, v in zip(samples, values, strict=True)
        ]
        cv2.polylines(img, [np.array(pts, np.int32)], False, (180, 90, 30), 2)
        cv2.putText(
            img, f"{label}: {lo:g}..{hi:g}", (60, top + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
        )
    cv2.putText(
        img, result["summary"][:140], (5, img.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1
    )
    cv2.imwrite(str(path), img)
    return "opencv"


def summarise(result: dict[str, Any], args: argparse.Namespace) -> str:
    ev, al = result["events"], result["alerts"]
    rss, fds, thr = result["growth"]["rss_mb"], result["growth"]["fds"], result["growth"]["threads"]
    recovered = [o for o in result["outages"] if o["recovered_after_s"] is not None]
    worst = max((o["recovered_after_s"] for o in recovered), default=0.0)

    def g(x: dict[str, float] | None) -> str:
        return f"{x['after_warmup']:g}->{x['end']:g} ({x['pct']:+.1f}%)" if x else "n/a"

    return (
        f"soak[{args.label}] {args.cameras} cameras, {args.minutes:g} min: RSS MB {g(rss)}, FDs {g(fds)}, "
        f"threads {g(thr)}; outages recovered {len(recovered)}/{len(result['outages'])} (worst {worst:g} s); "
        f"receiver flaps {len(result['flaps'])}; events lost {ev['ingest_lost'] + ev['camera_lost']} "
        f"(ingested {ev['ingest_accepted']}, camera {ev['camera_stored']}/{ev['camera_produced']}), "
        f"alerts lost {al['lost']}/{al['created']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument(
        "--restart-every-s", type=float, default=180.0, help="an RTSP server outage this often"
    )
    parser.add_argument("--outage-s", type=float, default=20.0)
    parser.add_argument("--recover-timeout-s", type=float, default=60.0)
    parser.add_argument(
        "--flap-every-s", type=float, default=120.0, help="the webhook receiver goes down this often"
    )
    parser.add_argument("--flap-down-s", type=float, default=30.0)
    parser.add_argument("--ingest-per-s", type=float, default=2.0)
    parser.add_argument("--drain-timeout-s", type=float, default=180.0)
    parser.add_argument(
        "--label", default="soak", help="names the result files: bench/results/<label>.json/.png"
    )
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = run(args)
    warmup_s = min(max(60.0, 0.1 * args.minutes * 60), args.minutes * 30)
    result["warmup_s"] = warmup_s
    result["growth"] = {k: growth(result["samples"], k, warmup_s) for k in ("rss_mb", "fds", "threads")}
    result["summary"] = summarise(result, args)
    ev, al = result["events"], result["alerts"]
    result["ok"] = {
        "outages_recovered": all(o["recovered_after_s"] is not None for o in result["outages"]),
        "nothing_lost": ev["ingest_lost"] == ev["camera_lost"] == ev["without_alert"] == al["lost"] == 0,
        "flat": all(g is not None and g["pct"] < 5 for k, g in result["growth"].items() if k != "threads"),
    }
    result["run"] = {
        "started": started,
        "args": vars(args),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / f"{args.label}.png"
    result["plot"] = {"path": str(png.relative_to(ROOT)), "drawn_with": plot(result, png)}
    (RESULTS / f"{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(result["summary"])
    return 0 if result["ok"]["outages_recovered"] and result["ok"]["nothing_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
