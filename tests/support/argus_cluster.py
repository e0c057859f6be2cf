"""Several `argus serve` processes as one cluster on loopback, sharing one PostgreSQL database and Redis
(tests/cluster/test_three_nodes.py and bench/cluster.py).

    cluster = ProcessCluster(db_url, redis_url, prefix, root, ttl_s=5)
    a = cluster.start("a")                      # waits for /api/health
    cluster.kill("a")                           # kill -9; cluster.start("a") brings it back (same name)
    sampler = Sampler(cluster); sampler.start() # every node's /api/cameras states, in a thread

A node may reach PostgreSQL through a `ThreadedProxy` (a TcpProxy on its own loop in a thread), which a
test cuts and restores: a node cut off from the database, and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import API_KEY, AUTH
from tests.support.server import free_port, wait_until_healthy
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
RUNNING = frozenset({"connecting", "streaming", "reconnecting"})  # a pipeline exists on that node


@dataclass
class NodeProcess:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/live?token={API_KEY}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until_healthy(self.proc, self.url, self.output, timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """kill -9: no lease handed back, no farewell."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class ProcessCluster:
    db_url: str
    redis_url: str
    redis_prefix: str
    root: Path
    ttl_s: float = 5.0
    extra_env: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, NodeProcess] = field(default_factory=dict)

    @property
    def renew_s(self) -> float:
        return self.ttl_s / 3

    def start(self, name: str, *, database_url: str | None = None, capacity: float = 1.0) -> NodeProcess:
        """Start (or restart, same name and port) the node `name`; returns once it answers /api/health."""
        node = self.nodes.get(name)
        if node is None:
            data_dir = self.root / name
            data_dir.mkdir(parents=True, exist_ok=True)
            env = {
                **os.environ,
                "ARGUS_DATA_DIR": str(data_dir),
                "ARGUS_DATABASE_URL": database_url or self.db_url,
                "ARGUS_API_KEYS": API_KEY,
                "ARGUS_LOG_LEVEL": "info",
                "ARGUS_REDIS_URL": self.redis_url,
                "ARGUS_REDIS_PREFIX": self.redis_prefix,
                "ARGUS_NODE_NAME": name,
                "ARGUS_NODE_CAPACITY": f"{capacity:g}",
                "ARGUS_LEASE_TTL_S": f"{self.ttl_s:g}",
                "ARGUS_RECONNECT_MAX_DELAY": "2",
                **self.extra_env,
            }
            node = NodeProcess(name, free_port(), env, data_dir / "argus.log")
            self.nodes[name] = node
        node.start()
        return node

    def kill(self, name: str) -> None:
        self.nodes[name].kill()

    def live(self) -> list[NodeProcess]:
        return [n for n in self.nodes.values() if n.alive]

    def client(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.nodes[name].url, headers=AUTH, timeout=10)

    def node_list(self) -> list[dict[str, Any]]:
        """GET /api/nodes from the first live node that answers."""
        for node in self.live():
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{node.url}/api/nodes", headers=AUTH, timeout=5)
                if r.status_code == 200:
                    return list(r.json())
        raise AssertionError("no node answers GET /api/nodes")

    def leases(self) -> dict[str, set[int]]:
        """Node name -> cameras it leases, as GET /api/nodes says (up nodes only)."""
        return {n["name"]: set(n["cameras"]) for n in self.node_list() if n["state"] == "up"}

    def running(self, name: str) -> set[int] | None:
        """Cameras with a pipeline on that node (its own /api/cameras); None if it does not answer."""
        node = self.nodes[name]
        try:
            r = httpx.get(f"{node.url}/api/cameras", headers=AUTH, timeout=3)
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        # the list shows every camera as its owner reports it: this node's are those naming it
        return {c["id"] for c in r.json() if c.get("state") in RUNNING and c.get("node", name) == name}

    def health(self, name: str) -> dict[str, Any] | None:
        """/api/health (public, answers without the database): its camera summary says what runs."""
        try:
            r = httpx.get(f"{self.nodes[name].url}/api/health", timeout=3)
        except httpx.HTTPError:
            return None
        return dict(r.json()) if r.status_code in (200, 503) else None

    def stop_all(self) -> None:
        for node in self.live():  # all asked at once: each hands its cameras back while the others stop
            assert node.proc is not None
            node.proc.terminate()
        for node in self.nodes.values():
            node.stop()


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    node: str
    states: dict[int, str]  # camera id -> its state on that node


class Sampler:
    """Polls every live node's /api/cameras from a thread; keeps (time, node, states) samples."""

    def __init__(self, cluster: ProcessCluster, interval: float = 0.25) -> None:
        self.cluster = cluster
        self.interval = interval
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test.cluster-sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(headers=AUTH, timeout=2) as http:
            while not self._stop.is_set():
                for node in list(self.cluster.nodes.values()):
                    if not node.alive:  # a dead node runs nothing
                        with self._lock:
                            self.samples.append(Sample(time.monotonic(), node.name, {}))
                        continue
                    try:
                        r = http.get(f"{node.url}/api/cameras")
                    except httpx.HTTPError:
                        continue
                    if r.status_code == 200:
                        # its own cameras' states: the list shows every camera, another node's as stopped
                        listed = r.json()
                        own = {c["id"] for c in listed if c.get("node", node.name) == node.name}
                        states = {c["id"]: "stopped" for c in listed}
                        states.update({c["id"]: c["state"] or "stopped" for c in listed if c["id"] in own})
                        with self._lock:
                            self.samples.append(Sample(time.monotonic(), node.name, states))
                self._stop.wait(self.interval)

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def double_streaming(self, state: str = "streaming") -> dict[int, float]:
        """Camera -> the longest time it was seen `state` on two nodes at once.

        Each node's latest sample stands until its next one (or for one interval if it stops answering);
        an overlap lasts from the first moment two nodes' standing samples both report it until one
        stops doing so.
        """
        samples = self.snapshot()
        standing: dict[str, Sample] = {}
        since: dict[int, float] = {}
        longest: dict[int, float] = {}
        for s in samples:
            standing[s.node] = s
            fresh = {n: x for n, x in standing.items() if s.at - x.at <= 3 * self.interval + 1.0}
            cams = {c for x in fresh.values() for c, st in x.states.items() if st == state}
            for cid in cams:
                on = [n for n, x in fresh.items() if x.states.get(cid) == state]
                if len(on) >= 2:
                    since.setdefault(cid, s.at)
                    longest[cid] = max(longest.get(cid, 0.0), s.at - since[cid])
                else:
                    since.pop(cid, None)
            for cid in list(since):
                if cid not in cams:
                    since.pop(cid)
        return longest

    def owners_over_time(self) -> list[tuple[float, dict[int, str]]]:
        """(time, camera -> node running it) after each sample: for plots of ownership."""
        out: list[tuple[float, dict[int, str]]] = []
        standing: dict[str, Sample] = {}
        for s in self.snapshot():
            standing[s.node] = s
            owners: dict[int, str] = {}
            for n, x in standing.items():
                if s.at - x.at > 3 * self.interval + 1.0:
                    continue
                for cid, st in x.states.items():
                    if st in RUNNING:
                        owners[cid] = n
            out.append((s.at, owners))
        return out


class ThreadedProxy:
    """A TcpProxy (tests/support/tcp_proxy.py) on an event loop of its own thread, driven from sync code."""

    def __init__(self, target_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test.pg-proxy", daemon=True)
        self._thread.start()
        self._proxy: TcpProxy = self._call(TcpProxy.start(target_port))

    @property
    def port(self) -> int:
        return self._proxy.port

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)

    def cut(self) -> None:
        self._call(self._proxy.cut())

    def restore(self) -> None:
        self._call(self._proxy.restore())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._proxy.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@contextlib.contextmanager
def proxied(target_port: int) -> Iterator[ThreadedProxy]:
    proxy = ThreadedProxy(target_port)
    try:
        yield proxy
    finally:
        proxy.close()
