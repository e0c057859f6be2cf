"""The member's loops on a real PostgreSQL: renews keep their period while the tick is stuck on the
database, long-dead nodes leave the nodes table, one node name runs in one process at a time, and a
slow pipeline stop never holds up another camera's."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select

from app.analyzers.registry import AnalyzerRegistry
from app.cameras.config import CameraConfig
from app.cameras.manager import MultiCameraManager
from app.cameras.pipeline import PipelineDeps
from app.cluster.member import NodeNameTaken
from app.events.bus import EventBus
from app.inference.pool import ResourcePool
from app.live.hub import LiveHub
from app.models import Node
from tests.conftest import make_settings
from tests.support.cluster_nodes import TTL_S, Cluster, until
from tests.support.rtsp import RtspServer
from tests.support.services import asyncpg_dsn

pytestmark = [pytest.mark.postgres, pytest.mark.rtsp]


class TestRenewPeriod:
    async def test_a_tick_stuck_on_the_database_never_costs_the_node_its_cameras(
        self, cluster: Cluster, cameras_rtsp: RtspServer, cluster_db_url: str
    ) -> None:
        # given: a runs two cameras
        a = await cluster.start("a")
        ids = await cluster.add_cameras([cameras_rtsp.url(m) for m in (1, 2)])
        await until(lambda: a.running() == set(ids), 20, "a runs both")
        tokens = await cluster.leases()
        ticks = a.member.ticks
        # when: the cameras table is locked for three TTLs (every tick hangs on it; renews do not)
        conn = await asyncpg.connect(asyncpg_dsn(cluster_db_url))
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE cameras IN ACCESS EXCLUSIVE MODE")
                loop = asyncio.get_running_loop()
                until_at = loop.time() + 3 * TTL_S
                while loop.time() < until_at:
                    # then: the cameras keep running here all along (no self-fencing)
                    assert a.running() == set(ids)
                    await asyncio.sleep(0.1)
        finally:
            await conn.close()
        # and the ticks resume once the lock is gone, with the same leases
        await a.ticks(2)
        assert a.member.ticks > ticks
        assert await cluster.leases() == tokens
        assert a.running() == set(ids)
        assert cluster.overlaps == []


class TestForgottenNodes:
    async def test_nodes_dead_for_long_are_deleted_and_recently_down_ones_stay(
        self, cluster: Cluster, cluster_db_url: str
    ) -> None:
        # given: a node gone for two hours and one down for ten minutes
        conn = await asyncpg.connect(asyncpg_dsn(cluster_db_url))
        try:
            for name, age in (("gone", "2 hours"), ("down", "10 minutes")):
                await conn.execute(
                    "INSERT INTO nodes (name, capacity, started_at, heartbeat_at, load)"
                    f" VALUES ($1, 1.0, now() - interval '{age}', now() - interval '{age}', '{{}}')",
                    name,
                )
        finally:
            await conn.close()
        # when
        a = await cluster.start("a")
        await a.ticks(1)
        # then
        async with a.sessionmaker() as session:
            names = set((await session.execute(select(Node.name))).scalars())
        assert names == {"a", "down"}


class TestNodeName:
    async def test_a_second_live_process_under_the_same_name_is_refused(self, cluster: Cluster) -> None:
        # given
        a = await cluster.start("a")
        # when / then: a clear error naming the setting; the first one keeps running
        with pytest.raises(NodeNameTaken, match="ARGUS_NODE_NAME"):
            await cluster.start("a")
        await a.ticks(2)
        assert cluster.nodes["a"] is a

    async def test_a_restart_after_a_crash_takes_the_name_back(self, cluster: Cluster) -> None:
        # given: a process of b vanished without leaving (its heartbeat still live, no longer moving)
        b = await cluster.start("b")
        b.member.pause()  # renews stop: as dead as a killed process for the database
        # when: a new process starts under the same name
        cluster.nodes.pop("b")
        again = await cluster.start("b")
        # then
        await again.ticks(1)
        assert again.member.instance != b.member.instance
        await b.stop()


class TestStops:
    async def test_a_slow_stop_never_holds_up_another_cameras_stop(
        self, cameras_rtsp: RtspServer, tmp_path: Path
    ) -> None:
        # given: one camera on a server that accepts and never answers (its stop waits on FFmpeg's
        # open, bounded only by open_timeout_s), one on a real stream
        held: list[asyncio.StreamWriter] = []

        async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = make_settings(tmp_path, open_timeout_s=120.0)
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(ResourcePool.from_settings(settings))
            hub = await stack.enter_async_context(LiveHub(settings.live_fps))
            deps = PipelineDeps(settings, pool, EventBus(), hub, AnalyzerRegistry())
            manager = await stack.enter_async_context(MultiCameraManager(deps))
            silent_url = f"rtsp://127.0.0.1:{port}/x"
            await manager.apply(CameraConfig(1, "silent", silent_url, vad={"enabled": False}))
            await manager.apply(CameraConfig(2, "real", cameras_rtsp.url(1), vad={"enabled": False}))
            await until(lambda: held, 20, "the silent camera connected")
            # when: the silent camera's stop hangs in its open
            slow = asyncio.create_task(manager.remove(1))
            await until(lambda: manager.get(1) is None, 10, "the silent camera left the manager")
            # then: the other camera stops meanwhile, and the silent one once its server goes
            async with asyncio.timeout(60):  # far below the silent open's bound (a hang, not a wait)
                await manager.remove(2)
            assert manager.get(2) is None
            assert not slow.done()
            for writer in held:
                writer.close()
            server.close()
            await slow
            assert manager.camera_ids() == set()
