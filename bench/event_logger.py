"""Event logger microbench: log() latency (p50/p99 µs) and batched vs one-commit-per-event throughput.

Runs on a temp SQLite file, and on PostgreSQL too when it is reachable (a throwaway database).
Writes bench/results/event_logger.json and prints one line per database.

    .venv/bin/python bench/event_logger.py [--events 5000] [--single 1000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app.events.logger import AsyncEventLogger  # noqa: E402
from app.events.repository import EventRepository  # noqa: E402
from app.events.types import NewEvent  # noqa: E402
from app.kit.db import create_engine, create_sessionmaker  # noqa: E402
from app.kit.severity import Severity  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Event  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "event_logger.json"


def make_events(n: int) -> list[NewEvent]:
    now = datetime.now(UTC)
    return [
        NewEvent(camera_id=i % 16 + 1, type="anomaly", severity=Severity.medium, started_at=now, score=1.0)
        for i in range(n)
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def count_rows(sessionmaker: Any) -> int:
    async with sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(Event)) or 0)


async def run_one(url: str, spill: Path, n_events: int, n_single: int) -> dict[str, Any]:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    try:
        # 1. log() latency while the writer runs alongside (a producer that yields every 10 events)
        events = make_events(n_events)
        lat_ns: list[int] = []
        async with AsyncEventLogger(sessionmaker, spill) as logger:
            for i, e in enumerate(events):
                t0 = time.perf_counter_ns()
                logger.log(e)
                lat_ns.append(time.perf_counter_ns() - t0)
                if i % 10 == 9:
                    await asyncio.sleep(0)
            await logger.flush()
        lat_us = [x / 1000 for x in lat_ns]

        # 2. throughput: batched logger, from first log() to everything committed
        events = make_events(n_events)
        async with AsyncEventLogger(sessionmaker, spill) as logger:
            t0 = time.perf_counter()
            for i, e in enumerate(events):
                logger.log(e)
                if i % 10 == 9:
                    await asyncio.sleep(0)
            await logger.flush()
            batched_s = time.perf_counter() - t0
            flushes = logger.flushes

        # 3. throughput: one transaction (commit) per event, the naive way
        single = make_events(n_single)
        t0 = time.perf_counter()
        for e in single:
            async with sessionmaker.begin() as session:
                await EventRepository(session).upsert_many([e.to_row()])
        single_s = time.perf_counter() - t0

        # 4. the logger's worst case: every flush at exactly flush_size (10) rows, as under a slow trickle
        tens = make_events(n_single)
        t0 = time.perf_counter()
        for i in range(0, n_single, 10):
            async with sessionmaker.begin() as session:
                await EventRepository(session).upsert_many([e.to_row() for e in tens[i : i + 10]])
        tens_s = time.perf_counter() - t0

        rows = await count_rows(sessionmaker)
        assert rows == 2 * n_events + 2 * n_single, f"lost rows: {rows}"
        batched_eps = n_events / batched_s
        single_eps = n_single / single_s
        return {
            "log_us": {
                "p50": round(pct(lat_us, 0.50), 2),
                "p99": round(pct(lat_us, 0.99), 2),
                "max": round(max(lat_us), 1),
                "mean": round(statistics.fmean(lat_us), 2),
                "calls": len(lat_us),
            },
            "batched": {
                "events": n_events,
                "seconds": round(batched_s, 3),
                "events_per_s": round(batched_eps),
                "flushes": flushes,
                "mean_batch": round(n_events / max(1, flushes), 1),
            },
            "one_commit_per_event": {
                "events": n_single,
                "seconds": round(single_s, 3),
                "events_per_s": round(single_eps),
            },
            "batches_of_10": {"events": n_single, "events_per_s": round(n_single / tens_s)},
            "speedup": round(batched_eps / single_eps, 1),
            "speedup_batches_of_10": round(n_single / tens_s / single_eps, 1),
        }
    finally:
        await engine.dispose()


def postgres_database(stack: ExitStack) -> str | None:
    try:
        from tests.support.services import fresh_postgres_database, reachable
    except ImportError:
        return None
    if not reachable("127.0.0.1", 5432):
        return None
    return stack.enter_context(fresh_postgres_database())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--single", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "bench": "event_logger",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "targets": {"log_p99_us": 100, "speedup": 10},
        "databases": {},
    }
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        urls = {"sqlite": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"}
        pg = None if args.no_postgres else postgres_database(stack)
        if pg:
            urls["postgres"] = pg
        for name, url in urls.items():
            upgrade(url)
            r = asyncio.run(run_one(url, Path(tmp) / f"spill-{name}", args.events, args.single))
            results["databases"][name] = r
            print(
                f"event_logger {name}: log() p50 {r['log_us']['p50']} us p99 {r['log_us']['p99']} us; "
                f"batched {r['batched']['events_per_s']} ev/s (mean batch {r['batched']['mean_batch']}) vs "
                f"one-commit {r['one_commit_per_event']['events_per_s']} ev/s = {r['speedup']}x "
                f"(batches of exactly 10: {r['speedup_batches_of_10']}x)"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
