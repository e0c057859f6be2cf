"""Durable ingest: `POST /api/events` throughput with group commit vs one commit per request.

Starts a real `argus serve` twice, on SQLite (and with `--postgres` on a throwaway PostgreSQL database
too): with the default ARGUS_INGEST_MAX_BATCH, then with 1 (each request its own transaction). C
concurrent clients post events for D seconds against each; every 202 is checked to be stored. Writes
bench/results/ingest.json and prints one line per database.

    .venv/bin/python bench/ingest.py [--clients 32] [--seconds 5] [--alerts] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest.json"
KEY = "bench-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def argus(data_dir: Path, max_batch: int | None, database_url: str | None = None) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env.update({"ARGUS_DATA_DIR": str(data_dir), "ARGUS_API_KEYS": KEY, "ARGUS_LOG_LEVEL": "warning"})
    if max_batch is not None:
        env["ARGUS_INGEST_MAX_BATCH"] = str(max_batch)
    if database_url:
        env["ARGUS_DATABASE_URL"] = database_url
    cmd = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"argus serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("argus serve did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


async def burst(url: str, clients: int, seconds: float) -> dict[str, Any]:
    accepted: list[str] = []
    latencies: list[float] = []
    other: dict[int, int] = {}
    stop_at = time.monotonic() + seconds

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as api:
            i = 0
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                r = await api.post(
                    "/api/events", json={"type": f"bench_{n}", "severity": "low", "data": {"i": i}}
                )
                latencies.append(time.perf_counter() - started)
                if r.status_code == 202:
                    accepted.append(r.json()["id"])
                else:
                    other[r.status_code] = other.get(r.status_code, 0) + 1
                i += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as api:
        health = (await api.get("/api/health")).json()
        stored = await count_stored(api)
    latencies.sort()
    ingest = health.get("ingest", {})
    return {
        "accepted": len(accepted),
        "stored": stored,
        "lost": len(accepted) - min(stored, len(accepted)),
        "other_statuses": other,
        "per_s": round(len(accepted) / elapsed, 1),
        "latency_ms": {
            "p50": round(latencies[len(latencies) // 2] * 1e3, 2),
            "p99": round(latencies[int(len(latencies) * 0.99)] * 1e3, 2),
        },
        "commits": ingest.get("commits"),
        "events_per_commit": round(ingest["stored"] / ingest["commits"], 1)
        if ingest.get("commits")
        else None,
    }


async def count_stored(api: httpx.AsyncClient) -> int:
    n, cursor = 0, None
    while True:
        page = (
            await api.get("/api/events", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        ).json()
        n += len(page["items"])
        if not (cursor := page["next_cursor"]):
            return n


async def add_alert_rule(url: str) -> None:
    """A rule matching every event, to a webhook nobody answers (alerts are decided before each 202)."""
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as api:
        hook = await api.post(
            "/api/webhooks", json={"name": "sink", "url": "http://127.0.0.1:9/x", "secret": "s" * 16}
        )
        hook.raise_for_status()
        rule = await api.post("/api/alert-rules", json={"name": "all", "webhook_ids": [hook.json()["id"]]})
        rule.raise_for_status()


def run(max_batch: int | None, clients: int, seconds: float, alerts: bool, database: str) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="argus-bench-ingest-"))
        database_url = None
        if database == "postgresql":
            sys.path.insert(0, str(ROOT))
            from app.migrate import upgrade
            from tests.support.services import fresh_postgres_database

            database_url = stack.enter_context(fresh_postgres_database())
            upgrade(database_url)
        url = stack.enter_context(argus(Path(tmp), max_batch, database_url))
        if alerts:
            asyncio.run(add_alert_rule(url))
        return asyncio.run(burst(url, clients, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--alerts", action="store_true", help="a rule matching every event (alerts decided too)"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="PostgreSQL too (a throwaway database per run)"
    )
    args = parser.parse_args()
    results = []
    for database in ("sqlite", "postgresql") if args.postgres else ("sqlite",):
        result = measure(database, args)
        results.append(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def measure(database: str, args: argparse.Namespace) -> dict[str, Any]:
    grouped = run(None, args.clients, args.seconds, args.alerts, database)
    single = run(1, args.clients, args.seconds, args.alerts, database)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "database": database,
        "clients": args.clients,
        "seconds": args.seconds,
        "alerts": args.alerts,
        "group_commit": grouped,
        "one_commit_per_request": single,
        "speedup": round(grouped["per_s"] / single["per_s"], 2) if single["per_s"] else None,
    }
    print(
        f"ingest ({args.clients} clients, {database}{', alerts' if args.alerts else ''}): group commit "
        f"{grouped['per_s']}/s (p50 {grouped['latency_ms']['p50']} ms, "
        f"{grouped['events_per_commit']} per commit) "
        f"vs one commit per request {single['per_s']}/s (p50 {single['latency_ms']['p50']} ms): "
        f"{result['speedup']}x; lost {grouped['lost'] + single['lost']}"
    )
    return result


if __name__ == "__main__":
    main()
