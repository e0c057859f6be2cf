"""Cluster bench: three `argus serve` nodes on one PostgreSQL database and Redis, 9 real RTSP cameras.

1. API latency, 1 node vs 3: median / p95 of GET /api/events (1,000 events stored) and GET /api/cameras,
   first with node a alone (running all 9 cameras), then with b and c up (3 cameras each; requests to
   a alone, and spread over the three).
2. Redis traffic of the live relay: a viewer on node a watches cameras run by b and c; bytes/s per
   watched camera from the JPEG messages on their channels (a subscriber of the bench's own) and from
   Redis' INFO counters (server-wide: minus a window without viewers; other users of the Redis add noise).
3. Hand-over: K times, kill -9 one node (in turn) and time until all its cameras stream on the others
   (polled every 0.1 s); restart it and wait until it has taken work back. The duplicate-work window
   comes from the nodes' logs (each pipeline's start and stop, to the millisecond, on one machine's
   clock; a killed node's pipelines end at the kill): the longest time any camera ran on two nodes.
   A sampler of every node's /api/cameras draws camera ownership over time (PNG, with the kills).

Writes bench/results/cluster.json and cluster_ownership.png and prints one line.

    .venv/bin/python bench/cluster.py [--kills 20] [--ttl 10] [--requests 200] [--watch-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
from redis import Redis  # noqa: E402

from app.migrate import upgrade  # noqa: E402
from tests.conftest import AUTH  # noqa: E402
from tests.support.argus_cluster import ProcessCluster, Sampler  # noqa: E402
from tests.support.rtsp import RtspServer  # noqa: E402
from tests.support.services import fresh_postgres_database  # noqa: E402
from tests.support.viewer import Viewer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REDIS_URL = "redis://127.0.0.1:6379/0"
CAMERAS = 9
NODES = ("a", "b", "c")
LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ argus\.cameras: camera (\d+) \(.*?\) (started|stopped)"
)


def wait(check: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError, AssertionError):
            if check():
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} not within {timeout} s")
        time.sleep(interval)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def streaming(cluster: ProcessCluster, names: list[str]) -> set[int]:
    out: set[int] = set()
    for name in names:
        try:
            r = httpx.get(f"{cluster.nodes[name].url}/api/cameras", headers=AUTH, timeout=3)
        except httpx.HTTPError:
            continue
        if r.status_code == 200:
            out |= {c["id"] for c in r.json() if c["state"] == "streaming" and c.get("node", name) == name}
    return out


def ingest(cluster: ProcessCluster, node: str, count: int) -> None:
    with cluster.client(node) as api:
        for start in range(0, count, 100):
            now = datetime.now(UTC).isoformat()
            events = [
                {"id": uuid.uuid4().hex, "type": "door", "severity": "low", "started_at": now}
                for _ in range(min(100, count - start))
            ]
            r = api.post("/api/events:batch", json={"edge": "bench", "events": events})
            r.raise_for_status()


def latency(urls: list[str], path: str, requests: int) -> dict[str, float]:
    took: list[float] = []
    with httpx.Client(headers=AUTH, timeout=10) as http:
        for base in urls:  # warm each node's connection pool
            http.get(base + path).raise_for_status()
        for i in range(requests):
            t = time.perf_counter()
            http.get(urls[i % len(urls)] + path).raise_for_status()
            took.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(took), 1), "p95_ms": round(pct(took, 0.95), 1)}


def api_latency(cluster: ProcessCluster, names: list[str], requests: int) -> dict[str, Any]:
    urls = [cluster.nodes[n].url for n in names]
    return {
        "events": latency(urls, "/api/events?limit=50", requests),
        "cameras": latency(urls, "/api/cameras", requests),
    }


def settled(cluster: ProcessCluster, ttl_s: float) -> dict[str, set[int]]:
    """Leases unchanged over two renew periods, every camera streaming somewhere."""
    last: dict[str, set[int]] | None = None
    deadline = time.monotonic() + 20 * ttl_s
    while time.monotonic() < deadline:
        now = cluster.leases()
        if now == last and len(streaming(cluster, [n.name for n in cluster.live()])) == CAMERAS:
            return now
        last = now
        time.sleep(2 * ttl_s / 3)
    raise SystemExit("bench: the cluster did not settle")


def redis_traffic(cluster: ProcessCluster, prefix: str, seconds: float, watched: list[int]) -> dict[str, Any]:
    redis = Redis.from_url(REDIS_URL)

    def counters() -> tuple[int, int]:
        info = redis.info("stats")
        return int(info["total_net_input_bytes"]), int(info["total_net_output_bytes"])

    def window() -> tuple[float, float]:
        i0, o0 = counters()
        time.sleep(seconds)  # the measurement window itself
        i1, o1 = counters()
        return (i1 - i0) / seconds, (o1 - o0) / seconds

    idle_in, idle_out = window()
    payload = {"bytes": 0, "messages": 0}
    stop = threading.Event()

    def listen() -> None:  # a subscriber of our own: what the owners publish for the watched cameras
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(*[f"{prefix}live:{c}" for c in watched])
        while not stop.is_set():
            m = pubsub.get_message(timeout=0.5)
            if m is not None and m["type"] == "message":
                payload["bytes"] += len(m["data"])
                payload["messages"] += 1
        pubsub.close()

    async def watch() -> dict[str, Any]:
        viewer = await Viewer.open(cluster.nodes["a"].ws_url)
        try:
            await viewer.subscribe(watched, fps=5)
            for c in watched:
                await viewer.wait_frames(c, 3, timeout=20)
            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            await asyncio.sleep(1.0)  # the listener subscribed
            t0, before = time.monotonic(), dict(payload)
            busy_in, busy_out = await asyncio.to_thread(window)
            t1, after = time.monotonic(), dict(payload)
            stop.set()
            listener.join(5)
            fps = [viewer.rate(c, t0, t1) for c in watched]
            got = {k: after[k] - before[k] for k in payload}
            return {"busy_in": busy_in, "busy_out": busy_out, "fps": fps, "window": t1 - t0, **got}
        finally:
            await viewer.close()

    got = asyncio.run(watch())
    redis.close()
    n = len(watched)
    return {
        "watched_cameras": n,
        "viewer_fps": [round(f, 2) for f in got["fps"]],
        "published_bytes_per_s_per_camera": round(got["bytes"] / got["window"] / n),
        "published_messages_per_s_per_camera": round(got["messages"] / got["window"] / n, 2),
        "info_in_bytes_per_s_per_camera": round((got["busy_in"] - idle_in) / n),
        "info_out_bytes_per_s_per_camera": round(
            (got["busy_out"] - idle_out - got["bytes"] / got["window"]) / n
        ),
        "info_idle_in_bytes_per_s": round(idle_in),
        "info_idle_out_bytes_per_s": round(idle_out),
    }


Run = tuple[str, float, float, bool]  # node, started, stopped (wall clock), ended by a kill


def pipeline_intervals(cluster: ProcessCluster, kills: dict[str, list[float]]) -> dict[int, list[Run]]:
    """camera -> its pipelines from the nodes' logs, by start; a pipeline still running at a kill of its
    node ends at that kill, one still running now ends now."""
    out: dict[int, list[Run]] = {}
    end = time.time()
    for name, node in cluster.nodes.items():
        open_: dict[int, float] = {}
        events: list[tuple[float, int, str]] = []
        for line in node.output().splitlines():
            m = LOG_LINE.match(line)
            if m:
                at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                events.append((at, int(m.group(2)), m.group(3)))
        marks = sorted(kills.get(name, []))
        for at, cid, what in sorted(events):
            while marks and marks[0] <= at:  # the kill ended what ran then
                k = marks.pop(0)
                for c, s in open_.items():
                    out.setdefault(c, []).append((name, s, k, True))
                open_.clear()
            if what == "started":
                open_[cid] = at
            elif cid in open_:
                out.setdefault(cid, []).append((name, open_.pop(cid), at, False))
        stop_at = marks[0] if marks else end
        for c, s in open_.items():
            out.setdefault(c, []).append((name, s, stop_at, bool(marks)))
    return {c: sorted(runs, key=lambda r: r[1]) for c, runs in out.items()}


def duplicate_windows(intervals: dict[int, list[Run]]) -> list[float]:
    """Per camera, each time two nodes ran it at once: how long (seconds)."""
    found: list[float] = []
    for runs in intervals.values():
        for i, (n1, s1, e1, _) in enumerate(runs):
            for n2, s2, e2, _ in runs[i + 1 :]:
                if n1 != n2 and min(e1, e2) > max(s1, s2):
                    found.append(min(e1, e2) - max(s1, s2))
    return found


def move_gaps(intervals: dict[int, list[Run]]) -> list[float]:
    """Cameras handed back by a live node (rebalance after a rejoin): the time from the giver's pipeline
    stop to the taker's start, i.e. how long the camera was watched by nobody."""
    return [
        nxt[1] - prev[2]
        for runs in intervals.values()
        for prev, nxt in pairwise(runs)
        if not prev[3] and nxt[0] != prev[0]
    ]


def draw(sampler: Sampler, kills: list[tuple[float, str]], path: Path) -> None:
    """Camera ownership over time: one row per camera, coloured by the node running it (grey: none)."""
    series = sampler.owners_over_time()
    if not series:
        return
    colors = {"a": (60, 76, 231), "b": (113, 204, 46), "c": (219, 152, 52)}  # BGR
    t0, t1 = series[0][0], series[-1][0]
    left, top, row, width = 70, 56, 28, 1200
    height = top + CAMERAS * row + 60
    img = np.full((height, left + width + 20, 3), 255, np.uint8)
    x = lambda t: left + int((t - t0) / max(t1 - t0, 1e-6) * width)  # noqa: E731
    for (ta, owners), (tb, _) in zip(series, [*series[1:], (t1, {})], strict=True):
        for cid in range(1, CAMERAS + 1):
            node = owners.get(cid)
            color = colors.get(node, (200, 200, 200)) if node else (200, 200, 200)
            y = top + (cid - 1) * row
            cv2.rectangle(img, (x(ta), y + 3), (max(x(tb), x(ta) + 1), y + row - 3), color, -1)
    for cid in range(1, CAMERAS + 1):
        cv2.putText(
            img, f"cam {cid}", (8, top + (cid - 1) * row + 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
        )
    for t, name in kills:
        cv2.line(img, (x(t), top - 8), (x(t), top + CAMERAS * row), (0, 0, 0), 1)
        cv2.putText(img, name, (x(t) - 4, top - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    y = top + CAMERAS * row + 30
    cv2.putText(
        img,
        f"{t1 - t0:.0f} s; lines: kill -9 of the named node",
        (left, y),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (0, 0, 0),
        1,
    )
    for i, (name, color) in enumerate(colors.items()):
        cx = left + 420 + i * 90
        cv2.rectangle(img, (cx, y - 12), (cx + 14, y + 2), color, -1)
        cv2.putText(img, f"node {name}", (cx + 20, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.putText(
        img,
        "Argus cluster: camera ownership during kills",
        (left, 22),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.55,
        (0, 0, 0),
        1,
    )
    cv2.imwrite(str(path), img)


def run(args: argparse.Namespace, db_url: str, rtsp: RtspServer, root: Path) -> dict[str, Any]:
    prefix = f"argus-bench-{uuid.uuid4().hex[:8]}:"
    cluster = ProcessCluster(db_url, REDIS_URL, prefix, root, ttl_s=args.ttl)
    result: dict[str, Any] = {}
    sampler = Sampler(cluster)
    try:
        # -- 1. one node, then three: API latency --
        cluster.start("a")
        wait(lambda: len(cluster.leases()) == 1, 30, "node a up")
        with cluster.client("a") as api:
            for m in range(1, CAMERAS + 1):
                body = {"name": f"cam{m}", "url": rtsp.url(m), "vad": {"enabled": False}}
                api.post("/api/cameras", json=body).raise_for_status()
        ingest(cluster, "a", 1000)
        wait(lambda: len(streaming(cluster, ["a"])) == CAMERAS, 60, "9 cameras on node a")
        time.sleep(args.ttl)  # ingest flushed, the node idle but for its cameras
        one = api_latency(cluster, ["a"], args.requests)
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(cluster.start, ["b", "c"]))
        leases = settled(cluster, args.ttl)
        result["spread_after_join"] = {n: len(ids) for n, ids in sorted(leases.items())}
        three_a = api_latency(cluster, ["a"], args.requests)
        three_all = api_latency(cluster, list(NODES), args.requests)
        result["api_latency"] = {
            "one_node": one,
            "three_nodes_to_a": three_a,
            "three_nodes_spread": three_all,
        }
        print(f"api latency: 1 node {one}; 3 nodes (a) {three_a}; 3 nodes (spread) {three_all}", flush=True)

        # -- 2. live relay: Redis traffic per watched camera --
        leases = cluster.leases()
        remote = sorted(leases.get("b", set()))[:2] + sorted(leases.get("c", set()))[:1]
        result["redis"] = redis_traffic(cluster, prefix, args.watch_seconds, remote)
        print(f"redis: {result['redis']}", flush=True)

        # -- 3. kills --
        sampler.start()
        handovers: list[float] = []
        rejoins: list[float] = []
        kill_marks: list[tuple[float, str]] = []  # (monotonic, node) for the plot
        kill_walls: dict[str, list[float]] = {}
        rng = random.Random(13)
        for i in range(args.kills):
            victim = NODES[i % len(NODES)]
            others = [n for n in NODES if n != victim]
            leases = settled(cluster, args.ttl)
            mine = leases.get(victim, set())
            time.sleep(rng.uniform(0, args.ttl / 3))  # a kill at any point of the renew period
            kill_marks.append((time.monotonic(), victim))
            kill_walls.setdefault(victim, []).append(time.time())
            t0 = time.monotonic()
            cluster.kill(victim)
            wait(lambda: mine <= streaming(cluster, others), 6 * args.ttl, f"kill {i}: hand-over")  # noqa: B023
            handovers.append(time.monotonic() - t0)
            t1 = time.monotonic()
            cluster.start(victim)
            wait(lambda: len(cluster.leases().get(victim, ())) >= 2, 20 * args.ttl, "rejoin")  # noqa: B023
            rejoins.append(time.monotonic() - t1)
            print(
                f"kill {i + 1}/{args.kills} ({victim}, {len(mine)} cameras): "
                f"hand-over {handovers[-1]:.1f} s, "
                f"back to >= 2 cameras {rejoins[-1]:.1f} s after restart",
                flush=True,
            )
        settled(cluster, args.ttl)
        sampler.stop()
        intervals = pipeline_intervals(cluster, kill_walls)
        dup = duplicate_windows(intervals)
        gaps = move_gaps(intervals)
        sampled = sampler.double_streaming()
        result["handover_s"] = {
            "kills": len(handovers),
            "min": round(min(handovers), 2),
            "median": round(statistics.median(handovers), 2),
            "p95": round(pct(handovers, 0.95), 2),
            "max": round(max(handovers), 2),
            "all": [round(h, 2) for h in handovers],
        }
        result["rejoin_to_2_cameras_s"] = {
            "median": round(statistics.median(rejoins), 2),
            "max": round(max(rejoins), 2),
        }
        result["duplicate_work"] = {
            "from_logs_max_s": round(max(dup), 3) if dup else 0.0,
            "from_logs_count": len(dup),
            "sampled_max_s": round(max(sampled.values()), 2) if sampled else 0.0,
            "renew_period_s": round(args.ttl / 3, 2),
        }
        result["rebalance_move_gap_s"] = {
            "moves": len(gaps),
            "median": round(statistics.median(gaps), 2) if gaps else None,
            "max": round(max(gaps), 2) if gaps else None,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        png = RESULTS / "cluster_ownership.png"
        draw(sampler, kill_marks, png)
        result["ownership_png"] = str(png.relative_to(ROOT))
    finally:
        with contextlib.suppress(Exception):
            sampler.stop()
        cluster.stop_all()
        redis = Redis.from_url(REDIS_URL)
        keys = list(redis.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            redis.delete(*keys)
        redis.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--ttl", type=float, default=10.0, help="ARGUS_LEASE_TTL_S of the nodes")
    parser.add_argument("--requests", type=int, default=200, help="per endpoint and configuration")
    parser.add_argument("--watch-seconds", type=float, default=10.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="argus-cluster-bench-"))
    started = time.monotonic()
    with fresh_postgres_database() as db_url:
        with ThreadPoolExecutor(1) as ex:
            ex.submit(upgrade, db_url).result()
        with RtspServer(mounts=CAMERAS, width=160, height=120, fps=10) as rtsp:
            result = run(args, db_url, rtsp, root)
    out = {
        "bench": "cluster",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "nodes": len(NODES),
        "cameras": CAMERAS,
        "lease_ttl_s": args.ttl,
        "seconds": round(time.monotonic() - started),
        **result,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(out, indent=2) + "\n")
    h, d, lat, r = out["handover_s"], out["duplicate_work"], out["api_latency"], out["redis"]
    print(
        f"cluster (3 nodes, {CAMERAS} cams, TTL {args.ttl:g} s): hand-over median {h['median']} s, "
        f"p95 {h['p95']} s, max {h['max']} s over {h['kills']} kills; duplicate work max "
        f"{d['from_logs_max_s']} s (logs); relay {r['published_bytes_per_s_per_camera']} B/s per watched "
        f"camera; GET /api/events median {lat['one_node']['events']['median_ms']} -> "
        f"{lat['three_nodes_spread']['events']['median_ms']} ms, /api/cameras "
        f"{lat['one_node']['cameras']['median_ms']} -> "
        f"{lat['three_nodes_spread']['cameras']['median_ms']} ms (1 -> 3 nodes)"
    )


if __name__ == "__main__":
    main()
