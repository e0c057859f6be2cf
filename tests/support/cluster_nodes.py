"""Several ClusterMembers in one process (tests/cluster): each with its own engine and a real camera
manager (real pipelines), all on one PostgreSQL database; a sampler records any camera seen running on two
nodes at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.analyzers.registry import AnalyzerRegistry
from app.cameras.manager import MultiCameraManager
from app.cameras.pipeline import PipelineDeps
from app.cluster.member import ClusterMember
from app.config import Settings
from app.events.bus import EventBus
from app.inference.pool import ResourcePool
from app.kit.db import create_engine, create_sessionmaker
from app.live.hub import LiveHub
from app.models import Camera, CameraLease
from tests.conftest import make_settings
from tests.support.waiting import eventually

TTL_S = 3.0  # renew every 1 s: slack for a loaded 2-core machine, short enough for quick take-overs
CLUSTER_REDIS_URL = "redis://127.0.0.1:6379/0"  # switches cluster mode on; the members never use Redis


@dataclass
class ClusterNode:
    name: str
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    manager: MultiCameraManager
    member: ClusterMember
    stack: AsyncExitStack

    def running(self) -> set[int]:
        return self.manager.camera_ids()

    async def stop(self) -> None:
        await self.stack.aclose()

    async def ticks(self, n: int) -> None:
        """Wait until this member has completed `n` more ticks."""
        target = self.member.ticks + n
        await eventually(lambda: self.member.ticks >= target, timeout=n * TTL_S + 10, what=f"{n} ticks")


@dataclass
class Cluster:
    db_url: str
    root: Path
    nodes: dict[str, ClusterNode] = field(default_factory=dict)
    overlaps: list[tuple[int, str, str]] = field(default_factory=list)  # camera seen running on two nodes

    async def start(
        self, name: str, *, capacity: float = 1.0, database_url: str | None = None
    ) -> ClusterNode:
        url = database_url or self.db_url
        settings = make_settings(
            self.root / name,
            database_url=url,
            redis_url=CLUSTER_REDIS_URL,
            node_name=name,
            node_capacity=capacity,
            lease_ttl_s=TTL_S,
        )
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            engine = create_engine(url)
            stack.push_async_callback(engine.dispose)
            sessionmaker = create_sessionmaker(engine)
            pool = await stack.enter_async_context(ResourcePool.from_settings(settings))
            hub = await stack.enter_async_context(LiveHub(settings.live_fps))
            deps = PipelineDeps(settings, pool, EventBus(), hub, AnalyzerRegistry())
            manager = await stack.enter_async_context(MultiCameraManager(deps))
            member = await stack.enter_async_context(
                ClusterMember.from_settings(settings, sessionmaker, manager)
            )
        except BaseException:
            await stack.aclose()
            raise
        node = ClusterNode(name, settings, sessionmaker, manager, member, stack)
        self.nodes[name] = node
        return node

    async def watch_overlaps(self) -> None:
        """Sample every node's running cameras until cancelled; any camera on two nodes at once is kept."""
        while True:
            seen: dict[int, str] = {}
            for node in list(self.nodes.values()):
                for cid in node.running():
                    if cid in seen:
                        self.overlaps.append((cid, seen[cid], node.name))
                    seen[cid] = node.name
            await asyncio.sleep(0.02)

    async def add_cameras(self, urls: list[str], **extra: object) -> list[int]:
        engine = create_engine(self.db_url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                rows = [
                    Camera(name=f"cam{i}-{url[-6:]}", url=url, vad={"enabled": False}, **extra)
                    for i, url in enumerate(urls)
                ]
                session.add_all(rows)
                await session.flush()
                return [r.id for r in rows]
        finally:
            await engine.dispose()

    async def set_camera(self, camera_id: int, **values: object) -> None:
        await self.execute(update(Camera).where(Camera.id == camera_id).values(**values))

    async def leases(self) -> dict[int, tuple[str | None, int]]:
        engine = create_engine(self.db_url)
        try:
            async with create_sessionmaker(engine)() as session:
                rows = await session.execute(
                    select(CameraLease.camera_id, CameraLease.node, CameraLease.token)
                )
                return {cid: (node, token) for cid, node, token in rows}
        finally:
            await engine.dispose()

    async def execute(self, stmt: object) -> None:
        engine = create_engine(self.db_url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                await session.execute(stmt)  # type: ignore[call-overload]
        finally:
            await engine.dispose()

    def placement(self) -> dict[str, set[int]]:
        return {name: node.running() for name, node in self.nodes.items()}


async def until(check: Callable[[], Awaitable[object] | object], timeout: float, what: str) -> object:
    """Poll until check() is truthy (sync or async), failing with `what` at the deadline."""
    return await eventually(check, timeout=timeout, interval=0.1, what=what)
