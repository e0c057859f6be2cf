"""Live view bench: 4 real file cameras, 1 / 10 / 100 WebSocket clients each subscribed to all of them.

The server runs as its own process (uvicorn.run(create_app()), as `argus serve`), so its CPU is
measured apart from the clients' (all clients share this process and its event loop; they only parse
the frame header). permessage-deflate is off unless --deflate (then results go to live_deflate.json).
Per client and camera it reports the delivered FPS (min / median over all client-camera pairs),
frames delivered per second in total, server CPU per delivered frame (total, and above the
same server with nobody watching), and JPEG encodes per second read from /metrics
(argus_live_encodes: must stay cameras x fps whatever the client count). Then it opens the
dashboard in Debian's headless Chromium and saves a screenshot (skipped without /usr/bin/chromium).
Writes bench/results/live.json (+ live_dashboard.png) and prints one line.

    .venv/bin/python bench/live.py [--clients 1,10,100] [--seconds 10] [--cameras 4]
                                   [--no-screenshot] [--deflate]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from app.live.protocol import FRAME_HEADER  # noqa: E402
from tests.support.server import free_port  # noqa: E402
from tests.support.viewer import write_video  # noqa: E402

RESULTS = ROOT / "bench" / "results"
KEY = "bench-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
FOOTAGE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # Debian opencv-doc, 768x576 real scene
CHROMIUM = "/usr/bin/chromium"


class Client:
    """Counts frames per camera; never decodes (the bench measures the server, not JPEG decoding)."""

    def __init__(self, url: str, camera_ids: list[int]) -> None:
        self.url, self.camera_ids = url, camera_ids
        self.counts = dict.fromkeys(camera_ids, 0)
        self.counting = False
        self.task: asyncio.Task[None] | None = None

    async def run(self, ready: asyncio.Event) -> None:
        async with connect(self.url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "camera_ids": self.camera_ids}))
            ready.set()
            async for message in ws:
                if self.counting and isinstance(message, bytes):
                    camera_id = FRAME_HEADER.unpack_from(message)[2]
                    self.counts[camera_id] += 1


def encodes_total(metrics: str) -> float:
    return sum(
        float(v) for v in re.findall(r"^argus_live_encodes_total\{[^}]*\} ([0-9.e+]+)$", metrics, re.M)
    )


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def measure(
    base: str,
    camera_ids: list[int],
    clients: int,
    seconds: float,
    server: psutil.Process,
    http: httpx.AsyncClient,
) -> dict[str, Any]:
    ws_url = base.replace("http://", "ws://") + f"/ws/live?token={KEY}"
    viewers = [Client(ws_url, camera_ids) for _ in range(clients)]
    tasks = []
    for v in viewers:
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(v.run(ready)))
        await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(2.0)  # warm-up: every ticker started, every outbox flowing
    for v in viewers:
        v.counting = True
    enc0 = encodes_total((await http.get("/metrics")).text)
    cpu0, me0, t0 = cpu_seconds(server), cpu_seconds(psutil.Process()), time.monotonic()
    await asyncio.sleep(seconds)  # the measurement window
    for v in viewers:
        v.counting = False
    elapsed = time.monotonic() - t0
    cpu1, me1 = cpu_seconds(server), cpu_seconds(psutil.Process())
    enc1 = encodes_total((await http.get("/metrics")).text)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    per_pair = [n / elapsed for v in viewers for n in v.counts.values()]
    delivered = sum(v.counts[c] for v in viewers for c in camera_ids)
    return {
        "clients": clients,
        "fps_min": round(min(per_pair), 2),
        "fps_median": round(statistics.median(per_pair), 2),
        "fps_max": round(max(per_pair), 2),
        "delivered_per_s": round(delivered / elapsed, 1),
        "encodes_per_s": round((enc1 - enc0) / elapsed, 2),
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "server_cpu_ms_per_frame": round(1000 * (cpu1 - cpu0) / max(1, delivered), 3),
        "client_cpu_pct": round(100 * (me1 - me0) / elapsed, 1),
    }


async def idle_cpu(server: psutil.Process, seconds: float) -> float:
    c0, t0 = cpu_seconds(server), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(server) - c0) / (time.monotonic() - t0)


async def screenshot(base: str, http: httpx.AsyncClient, camera_ids: list[int], path: Path) -> str:
    from playwright.async_api import async_playwright

    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
        page = await (await browser.new_context(viewport={"width": 1600, "height": 900})).new_page()
        await page.goto(base + "/")
        await page.fill("#key-form input[name=key]", KEY)
        await page.click("#key-form button[type=submit]")
        for camera_id in camera_ids:
            await page.wait_for_selector(f'.tile.live[data-camera="{camera_id}"]', timeout=30_000)
        samples = [
            ("door_open", "high", {"door": "loading bay"}),
            ("person_loitering", "medium", {}),
            ("tamper", "critical", {}),
            ("motion", "low", {}),
        ]
        for i, (kind, severity, data) in enumerate(samples):
            body = {
                "camera_id": camera_ids[i % len(camera_ids)],
                "type": kind,
                "severity": severity,
                "score": round(0.55 + 0.1 * i, 2),
                "data": data,
            }
            await http.post("/api/events", json=body)
        await page.wait_for_selector(".feed-item >> nth=3", timeout=10_000)
        await page.wait_for_timeout(2500)  # the fps counters settle on their 2-s window
        await page.screenshot(path=str(path))
        await browser.close()
    return str(path.relative_to(ROOT))


def start_server(tmp: Path, deflate: bool, media_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`argus serve` as uvicorn.run(create_app()), with permessage-deflate off unless asked for: deflating
    JPEGs saves ~2 % of the bytes for ~1.5-3 ms CPU per frame *per client*, undoing encode-once."""
    port = free_port()
    env = {
        **os.environ,
        "ARGUS_DATA_DIR": str(tmp / "data"),
        "ARGUS_API_KEYS": KEY,
        "ARGUS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'data' / 'argus.db'}",
        "ARGUS_LOG_LEVEL": "warning",
        "ARGUS_MEDIA_DIR": str(media_dir),  # local files are cameras only from here
    }
    code = (
        "import uvicorn; from app.main import create_app; uvicorn.run(create_app(), host='127.0.0.1', "
        f"port={port}, log_level='warning', ws_per_message_deflate={deflate})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    return proc, f"http://127.0.0.1:{port}"


async def wait_until(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout} s")
        await asyncio.sleep(0.2)


async def run(
    args: argparse.Namespace, proc: subprocess.Popen[bytes], base: str, footage: Path
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as http:

        async def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError("server exited")
            try:
                return (await http.get("/api/health")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(healthy, "server did not start", 60)
        names = ["Loading dock", "Main entrance", "Parking north", "Yard"]
        ids = []
        for i in range(args.cameras):
            body = {"name": names[i % 4] + ("" if i < 4 else f" {i}"), "url": str(footage)}
            ids.append((await http.post("/api/cameras", json=body)).json()["id"])

        async def streaming() -> bool:
            states = [(await http.get(f"/api/cameras/{i}/status")).json()["state"] for i in ids]
            return all(s == "streaming" for s in states)

        await wait_until(streaming, "cameras did not stream", 30)
        server = psutil.Process(proc.pid)
        baseline = await idle_cpu(server, args.seconds)
        runs = []
        for n in args.clients:
            r = await measure(base, ids, n, args.seconds, server, http)
            marginal = r["server_cpu_pct"] / 100 - baseline
            r["server_cpu_ms_per_frame_above_idle"] = round(
                1000 * marginal / max(1e-9, r["delivered_per_s"]), 3
            )
            runs.append(r)
        shot = "skipped"
        if args.screenshot:
            shot = await screenshot(base, http, ids, RESULTS / "live_dashboard.png")
    return {
        "bench": "live",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "footage": str(footage),
        "cameras": args.cameras,
        "fps_target": 5.0,
        "seconds": args.seconds,
        "server_idle_cpu_pct": round(100 * baseline, 1),
        "permessage_deflate": args.deflate,
        "runs": runs,
        "screenshot": shot,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,10,100", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--no-screenshot", dest="screenshot", action="store_false")
    parser.add_argument("--deflate", action="store_true", help="let uvicorn negotiate permessage-deflate")
    args = parser.parse_args()
    if args.screenshot and not os.path.exists(CHROMIUM):
        print(f"no screenshot: {CHROMIUM} not installed", file=sys.stderr)
        args.screenshot = False
    tmp = Path(tempfile.mkdtemp(prefix="argus-live-bench-"))
    footage = FOOTAGE if FOOTAGE.exists() else write_video(tmp / "clip.avi", 768, 576, 10, 20)
    proc, base = start_server(tmp, args.deflate, footage.parent)
    try:
        result = asyncio.run(run(args, proc, base, footage))
    finally:
        proc.terminate()
        proc.wait(20)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "live_deflate.json" if args.deflate else "live.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    line = "; ".join(
        f"{r['clients']} clients: fps min {r['fps_min']} med {r['fps_median']}, "
        f"{r['delivered_per_s']} frames/s, {r['encodes_per_s']} enc/s, "
        f"{r['server_cpu_ms_per_frame']} ms CPU/frame"
        for r in result["runs"]
    )
    idle = result["server_idle_cpu_pct"]
    print(f"live ({result['cameras']} cams, deflate {args.deflate}, server idle {idle}% CPU): {line}")


if __name__ == "__main__":
    main()
