"""Three `argus serve` processes as one cluster: one PostgreSQL database (its own), one Redis (a prefix of
its own), 9 real RTSP cameras. Spread 3/3/3; a viewer on one node watches a camera another node runs;
kill -9 a node: its cameras stream on the others within 15 s, no camera streams on two nodes longer than
one renew period, no event lost or duplicated, one alert per dedup window; the node comes back and takes
work back gradually; a node cut off from PostgreSQL stops its cameras within the lease TTL, then rejoins.

The lease TTL is 5 s here (renew every 1.7 s) to keep the module short; the 15 s hand-over bound of the
issue is for the default 10 s TTL (expiry + one renew period + a pipeline start), so it holds here with
room to spare. The tests share one cluster and run in order (a module-scoped fixture).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis import Redis

from app.migrate import upgrade
from tests.conftest import AUTH
from tests.support.argus_cluster import RUNNING, ProcessCluster, Sampler, proxied
from tests.support.rtsp import RtspServer, require_gstreamer
from tests.support.services import fresh_postgres_database, require_service
from tests.support.viewer import Viewer, measure_window
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.rtsp]

REDIS_URL = "redis://127.0.0.1:6379/0"
TTL_S = 5.0
HANDOVER_BOUND_S = 15.0
CAMERAS = 9
DEDUP_WINDOW_S = 120.0  # longer than the whole module: every "door" event falls in one window
FPS_TOLERANCE = 0.5


class Ingester:
    """Posts batches of events with ids of its own (POST /api/events:batch) to the nodes in turn, from a
    thread; a batch a node fails to answer goes to the next node, same ids (stored once by id)."""

    def __init__(self, cluster: ProcessCluster) -> None:
        self.cluster = cluster
        self.sent: list[str] = []  # ids of batches some node answered 200
        self.retried = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test.ingester", daemon=True)

    def start(self) -> Ingester:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        turn = 0
        with httpx.Client(headers=AUTH, timeout=5) as http:
            while not self._stop.is_set():
                ids = [uuid.uuid4().hex for _ in range(3)]
                now = datetime.now(UTC).isoformat()
                batch = {
                    "edge": "site-a",
                    "events": [{"id": i, "type": "door", "severity": "high", "started_at": now} for i in ids],
                }
                for attempt in range(20):
                    nodes = list(self.cluster.nodes.values())
                    node = nodes[(turn + attempt) % len(nodes)]
                    try:
                        r = http.post(f"{node.url}/api/events:batch", json=batch)
                        if r.status_code == 200:
                            self.sent.extend(ids)
                            break
                    except httpx.HTTPError:
                        pass
                    self.retried += 1
                turn += 1
                self._stop.wait(0.2)


@pytest.fixture(scope="module")
def rtsp() -> Iterator[RtspServer]:
    require_gstreamer()
    with RtspServer(mounts=CAMERAS, width=160, height=120, fps=10) as server:
        yield server


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_postgres_database() as url:
        with ThreadPoolExecutor(1) as ex:  # what `argus migrate` runs; Alembic's env runs its own loop
            ex.submit(upgrade, url).result()
        yield url


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    require_service("Redis", "127.0.0.1", 6379)
    prefix = f"argus-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    try:
        found = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if found:
            client.delete(*found)
    finally:
        client.close()


@pytest.fixture(scope="module")
def three(
    database: str, redis_prefix: str, rtsp: RtspServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProcessCluster, Sampler, Any]]:
    """Nodes a, b, c (c reaches PostgreSQL through a proxy the last test cuts), 9 cameras placed 3/3/3,
    a sampler of every node's camera states running throughout."""
    root = tmp_path_factory.mktemp("three-nodes")
    env = {"ARGUS_WEBHOOK_LEASE_S": "5"}  # a delivery claimed by a killed node is retaken soon
    cluster = ProcessCluster(database, REDIS_URL, redis_prefix, root, ttl_s=TTL_S, extra_env=env)
    with proxied(5432) as proxy:
        via_proxy = database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        sampler = Sampler(cluster)
        try:
            with ThreadPoolExecutor(3) as ex:  # three starts at once: a 2-core machine needs the overlap
                started = [
                    ex.submit(cluster.start, "a"),
                    ex.submit(cluster.start, "b"),
                    ex.submit(cluster.start, "c", database_url=via_proxy),
                ]
                for f in started:
                    f.result()
            wait_until(lambda: len(cluster.leases()) == 3, 20, what="three nodes up")
            with cluster.client("a") as api:
                for m in range(1, CAMERAS + 1):
                    body = {"name": f"cam{m}", "url": rtsp.url(m), "vad": {"enabled": False}}
                    r = api.post("/api/cameras", json=body)
                    assert r.status_code == 201, r.text
            sampler.start()
            yield cluster, sampler, proxy
        finally:
            sampler.stop()
            cluster.stop_all()


def counts(cluster: ProcessCluster) -> list[int]:
    return sorted(len(ids) for ids in cluster.leases().values())


def covered(cluster: ProcessCluster, names: list[str]) -> set[int]:
    """Cameras streaming on these nodes, by their own /api/cameras."""
    out: set[int] = set()
    for name in names:
        with httpx.Client(base_url=cluster.nodes[name].url, headers=AUTH, timeout=3) as http:
            r = http.get("/api/cameras")
            if r.status_code == 200:
                mine = [c for c in r.json() if c.get("node", name) == name]  # the list shows every camera
                out |= {c["id"] for c in mine if c["state"] == "streaming"}
    return out


def test_cameras_spread_three_per_node_each_streaming_on_its_owner(
    three: tuple[ProcessCluster, Sampler, Any],
) -> None:
    cluster, _, _ = three
    wait_until(lambda: counts(cluster) == [3, 3, 3], 30, what=lambda: f"3/3/3 (now {cluster.leases()})")
    leases = cluster.leases()
    wait_until(lambda: len(covered(cluster, ["a", "b", "c"])) == CAMERAS, 30, what="9 cameras streaming")
    for name, ids in leases.items():
        with cluster.client(name) as api:
            for cid in ids:
                status = api.get(f"/api/cameras/{cid}/status").json()
                assert status["node"] == name and status["state"] == "streaming"
        with cluster.client("a") as api:  # any node names the owner
            assert {api.get(f"/api/cameras/{cid}/status").json()["node"] for cid in ids} == {name}


async def test_a_viewer_on_a_watches_a_camera_c_runs_and_b_receives_nothing(
    three: tuple[ProcessCluster, Sampler, Any], redis_prefix: str
) -> None:
    cluster, _, _ = three
    camera = min(cluster.leases()["c"])
    redis = Redis.from_url(REDIS_URL)
    viewer = await Viewer.open(cluster.nodes["a"].ws_url)
    try:
        reply = await viewer.subscribe([camera], fps=5)
        assert reply["watching"] == [camera]
        await viewer.wait_frames(camera, 3, timeout=15)
        start, end = await measure_window(4.0)
        rate = viewer.rate(camera, start, end)
        assert abs(rate - 5.0) <= FPS_TOLERANCE, rate
        # only node a demands the camera, and only one subscriber (node a) listens on its channel
        demand = sorted(m.decode() for m in redis.zrange(f"{redis_prefix}demand", 0, -1))
        assert demand == [f"{camera}:a"]
        channels = [f"{redis_prefix}live:{cid}" for cid in range(1, CAMERAS + 1)]
        numsub = {k.decode(): n for k, n in redis.pubsub_numsub(*channels)}
        assert numsub == {ch: (1 if ch.endswith(f":{camera}") else 0) for ch in channels}
        # the viewer gone: its node's demand key goes (nothing is published any more)
        await viewer.close()
        await asyncio.to_thread(
            wait_until,
            lambda: not redis.zrange(f"{redis_prefix}demand", 0, -1),
            10,
            what="demand dropped",
        )
    finally:
        await viewer.close()
        redis.close()


def test_kill_9_hands_over_within_the_bound_without_loss_duplicates_or_double_alerts(
    three: tuple[ProcessCluster, Sampler, Any], receiver: WebhookReceiver
) -> None:
    cluster, sampler, _ = three
    with cluster.client("a") as api:
        hook = api.post("/api/webhooks", json={"name": "r", "url": receiver.url, "secret": receiver.secret})
        assert hook.status_code == 201, hook.text
        rule = {
            "name": "doors",
            "event_types": ["door"],
            "webhook_ids": [hook.json()["id"]],
            "dedup_window_s": DEDUP_WINDOW_S,
        }
        assert api.post("/api/alert-rules", json=rule).status_code == 201
    victims = cluster.leases()["b"]
    assert len(victims) == 3
    ingester = Ingester(cluster).start()
    try:
        wait_until(lambda: len(ingester.sent) >= 15, 20, what="events before the kill")
        # when: node b dies without a word
        killed_at = time.monotonic()
        cluster.kill("b")
        wait_until(
            lambda: victims <= covered(cluster, ["a", "c"]),
            HANDOVER_BOUND_S + 5,
            interval=0.1,
            what="b's cameras streaming on a or c",
        )
        handover_s = time.monotonic() - killed_at
        wait_until(lambda: len(ingester.sent) >= 60, 20, what="events after the kill")
    finally:
        ingester.stop()
    # then: within the bound
    assert handover_s <= HANDOVER_BOUND_S, handover_s
    # every event stored exactly once, whichever node took it (a retry went to another node)
    stored: list[str] = []
    with cluster.client("a") as api:
        cursor = None
        while True:
            params: dict[str, Any] = {"type": "door", "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/api/events", params=params).json()
            stored += [e["id"] for e in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
    assert len(stored) == len(set(stored))
    assert set(stored) == set(ingester.sent)
    # one alert for the whole dedup window, though three nodes raised "door" events
    receiver_ids = lambda: receiver.delivered_alert_ids()  # noqa: E731
    wait_until(lambda: len(receiver_ids()) >= 1, 20, what="the alert delivered")
    with cluster.client("a") as api:
        alerts = api.get("/api/alerts", params={"limit": 500}).json()["items"]
    assert len(alerts) == 1, alerts
    assert receiver_ids() == {alerts[0]["id"]}

    # when: b comes back (same name): it takes work back gradually (at most 2 per node per renew)
    cluster.start("b")
    wait_until(lambda: len(cluster.leases().get("b", ())) >= 2, 30, what="b takes cameras back")

    def settled() -> dict[str, set[int]] | None:
        # a rebalance move in flight is released by one node and not yet taken by b: look between moves
        leases = cluster.leases()
        leased = sum(len(ids) for ids in leases.values())
        return leases if leased == CAMERAS and len(covered(cluster, ["a", "b", "c"])) == CAMERAS else None

    leases = wait_until(settled, 30, what="all 9 leased once each and streaming")
    assert max(len(ids) for ids in leases.values()) - min(len(ids) for ids in leases.values()) <= 2
    samples = [s for s in sampler.snapshot() if s.node == "b" and s.at > killed_at]
    running_b = [n for s in samples if (n := sum(st in RUNNING for st in s.states.values()))]
    assert running_b and running_b[0] <= 2 * 2  # not all at once: at most 2 from each other node
    # and never a camera streaming on two nodes for longer than one renew period
    assert all(v <= cluster.renew_s for v in sampler.double_streaming().values()), sampler.double_streaming()


def test_a_node_cut_off_from_postgresql_stops_its_cameras_within_the_ttl_and_rejoins(
    three: tuple[ProcessCluster, Sampler, Any],
) -> None:
    cluster, sampler, proxy = three
    wait_until(lambda: len(cluster.leases().get("c", ())) >= 1, 30, what="c runs cameras")
    mine = cluster.leases()["c"]
    # when: c's way to PostgreSQL goes (listener closed, open connections reset)
    cut_at = time.monotonic()
    proxy.cut()

    def stopped() -> bool:
        health = cluster.health("c")
        return health is not None and health["cameras"]["running"] == 0

    wait_until(stopped, TTL_S + 5, interval=0.1, what="c stopped its cameras")
    fenced_s = time.monotonic() - cut_at
    assert fenced_s <= TTL_S, fenced_s  # before its leases can expire
    assert cluster.nodes["c"].alive  # the process lives on: API up, database away
    wait_until(lambda: mine <= covered(cluster, ["a", "b"]), 30, what="c's cameras taken over")
    # when: the database comes back, c rejoins and takes cameras again
    proxy.restore()
    wait_until(
        lambda: any(n["name"] == "c" and n["state"] == "up" for n in cluster.node_list()), 30, what="c up"
    )
    wait_until(lambda: len(cluster.leases().get("c", ())) >= 1, 30, what="c takes cameras again")
    wait_until(lambda: len(covered(cluster, ["a", "b", "c"])) == CAMERAS, 30, what="all 9 streaming")
    health = cluster.health("c")
    assert health is not None and health["database"] is True
    assert all(v <= cluster.renew_s for v in sampler.double_streaming().values()), sampler.double_streaming()
