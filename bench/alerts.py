"""Alert latency bench: events at 100/s across 8 cameras, a high-severity rule, a real webhook receiver.

Measures event produced (NewEvent.produced_at, stamped by bus.publish) -> webhook received (the
receiver's clock, same machine) p50/p95/p99, and alerts delivered vs raised. Events go through the
real EventBus, AlertEngine, outbox and WebhookDispatcher in-process (signed POSTs over loopback HTTP
to a receiver thread). The rule's dedup window is 0 by default, so every event is an alert (the
harder case: with the default 15 s window, 8 cameras yield 8 alerts per 15 s).
Runs on a temp SQLite file, and on PostgreSQL too when it is reachable.
Writes bench/results/alerts.json and prints one line per database.

    .venv/bin/python bench/alerts.py [--rate 100] [--seconds 10] [--cameras 8] [--dedup 0] [--no-postgres]
        [--runs 3] [--profile DIR]

With --runs N each database is run N times and the medians are reported (the machine is shared: one
run is noise). CPU per alert is this process's CPU from the first event to the last delivery, less the
bench's own polling of the receiver. --profile writes a cProfile of each run (pstats files) to DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from app.alerts.dispatcher import DispatchPolicy, WebhookDispatcher  # noqa: E402
from app.alerts.engine import AlertEngine  # noqa: E402
from app.events.bus import EventBus  # noqa: E402
from app.events.types import NewEvent  # noqa: E402
from app.kit.db import create_engine, create_sessionmaker  # noqa: E402
from app.kit.severity import Severity  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import AlertRule, Webhook  # noqa: E402
from tests.support.server import free_port  # noqa: E402
from tests.support.services import fresh_postgres_database, reachable  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "alerts.json"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ProcessReceiver:
    """The receiver in its own process (as in production: another machine), read back over HTTP."""

    def __init__(self) -> None:
        self.port, self.dump_port, self.secret = free_port(), free_port(), "bench-secret"
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.webhook_receiver",
                str(self.port),
                str(self.dump_port),
                self.secret,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == b"ready"

    def records(self) -> tuple[list[dict[str, Any]], float]:
        """Every request received, and the CPU seconds this call cost (not counted as the server's)."""
        cpu0 = time.thread_time()
        text = httpx.get(f"http://127.0.0.1:{self.dump_port}/", timeout=30).text
        out = [json.loads(line) for line in text.splitlines() if line]
        return out, time.thread_time() - cpu0

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def delivered_ids(records: list[dict[str, Any]]) -> set[str]:
    return {r["body"]["id"] for r in records if 200 <= r["status"] < 300}


async def run_one(
    url: str, rate: float, seconds: float, cameras: int, dedup_s: float, profile: Path | None = None
) -> dict[str, Any]:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    receiver = ProcessReceiver()
    try:
        async with sessionmaker.begin() as s:
            hook = Webhook(name="bench", url=receiver.url, secret=receiver.secret, timeout_s=5.0)
            s.add(hook)
            await s.flush()
            s.add(AlertRule(name="high", min_severity="high", webhook_ids=[hook.id], dedup_window_s=dedup_s))
        bus = EventBus()
        produced: dict[str, float] = {}
        n = int(rate * seconds)
        async with (
            WebhookDispatcher(sessionmaker, DispatchPolicy()) as dispatcher,
            AlertEngine(sessionmaker, on_alert=dispatcher.wake) as alerts,
        ):
            bus.subscribe("alerts", alerts.consider)
            profiler = cProfile.Profile(time.thread_time) if profile is not None else None
            if profiler is not None:
                profiler.enable()
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            for i in range(n):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                e = bus.publish(
                    NewEvent(
                        camera_id=i % cameras + 1,
                        type="anomaly",
                        severity=Severity.high,
                        started_at=datetime.now(UTC),
                        score=5.0,
                    )
                )
                produced[e.id] = e.produced_at
            publish_s = time.perf_counter() - t0
            await bus.drain(30)
            await alerts.idle(30)
            raised = alerts.created
            deadline = time.monotonic() + 60
            polling_cpu = 0.0
            while True:
                records, cost = await asyncio.to_thread(receiver.records)
                polling_cpu += cost
                if len(delivered_ids(records)) >= raised or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
            cpu_s = time.process_time() - cpu0 - polling_cpu
            if profiler is not None:
                profiler.disable()
                profile.parent.mkdir(parents=True, exist_ok=True)
                profiler.dump_stats(profile)
        first: dict[str, float] = {}
        for r in records:
            if 200 <= r["status"] < 300:
                first.setdefault(r["body"]["event"]["id"], r["received_at"])
        lat_ms = [(first[eid] - produced[eid]) * 1000 for eid in first]
        await bus.close()
        return {
            "events": n,
            "rate_per_s": round(n / publish_s, 1),
            "raised": raised,
            "delivered": len(delivered_ids(records)),
            "posts": len(records),
            "signed_ok": all(r["signed"] for r in records),
            # CPU of this process (bus, engine, outbox, dispatcher; not the receiver) per alert delivered
            "cpu_ms_per_alert": round(cpu_s * 1000 / max(1, raised), 2),
            "latency_ms": {
                "p50": round(pct(lat_ms, 0.50), 1),
                "p95": round(pct(lat_ms, 0.95), 1),
                "p99": round(pct(lat_ms, 0.99), 1),
                "max": round(max(lat_ms), 1),
            }
            if lat_ms
            else None,
        }
    finally:
        receiver.stop()
        await engine.dispose()


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs (and the runs themselves, for the spread)."""
    lats = [r["latency_ms"] for r in runs if r["latency_ms"]]
    return {
        "runs": len(runs),
        "raised": min(r["raised"] for r in runs),
        "delivered": min(r["delivered"] for r in runs),
        "all_delivered": all(r["delivered"] >= r["raised"] for r in runs),
        "signed_ok": all(r["signed_ok"] for r in runs),
        "cpu_ms_per_alert": round(statistics.median(r["cpu_ms_per_alert"] for r in runs), 2),
        "latency_ms": {
            k: round(statistics.median(x[k] for x in lats), 1) for k in ("p50", "p95", "p99", "max")
        }
        if lats
        else None,
        "each": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--dedup", type=float, default=0.0, help="the rule's dedup window (s)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--runs", type=int, default=1, help="runs per database; medians reported")
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile stats here")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    results: dict[str, Any] = {
        "bench": "alerts",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "load_average_before": os.getloadavg(),
        "targets": {"latency_p50_ms": 300},
        "databases": {},
    }
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        use_pg = not args.no_postgres and reachable("127.0.0.1", 5432)
        runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], **({"postgres": []} if use_pg else {})}
        for i in range(args.runs):  # interleaved, so a burst of load on the machine hits both alike
            for name in runs:  # a fresh database per run: every run starts from an empty outbox
                url = (
                    stack.enter_context(fresh_postgres_database())
                    if name == "postgres"
                    else f"sqlite+aiosqlite:///{Path(tmp) / f'bench-{i}.db'}"
                )
                upgrade(url)
                prof = args.profile / f"alerts-{name}-{i}.pstats" if args.profile else None
                r = asyncio.run(run_one(url, args.rate, args.seconds, args.cameras, args.dedup, prof))
                r["load_average"] = os.getloadavg()
                runs[name].append(r)
                lat = r["latency_ms"] or {}
                print(
                    f"alerts {name} run {i + 1}: {r['events']} events at {r['rate_per_s']}/s over "
                    f"{args.cameras} cameras; delivered {r['delivered']}/{r['raised']} raised; "
                    f"event->webhook p50 {lat.get('p50')} ms p95 {lat.get('p95')} ms p99 {lat.get('p99')} ms "
                    f"(target p50 < 300 ms); {r['cpu_ms_per_alert']} ms CPU per alert; "
                    f"load {r['load_average'][0]:.2f}",
                    flush=True,
                )
        for name, rs in runs.items():
            m = results["databases"][name] = median_of(rs)
            lat = m["latency_ms"] or {}
            print(
                f"alerts {name} median of {len(rs)}: delivered {m['delivered']}/{m['raised']}; "
                f"p50 {lat.get('p50')} ms p95 {lat.get('p95')} ms p99 {lat.get('p99')} ms; "
                f"{m['cpu_ms_per_alert']} ms CPU per alert"
            )
    results["load_average_after"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
