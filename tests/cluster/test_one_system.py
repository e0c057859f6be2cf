"""One system to the outside: another node's camera status (published to Redis), camera changes that wake
the owner at once, clips and spilled events that keep their fencing token (real PostgreSQL, Redis, RTSP)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from app.cameras.config import CameraConfig
from app.cameras.schemas import CameraStatus
from app.cluster.keys import Keys
from app.cluster.repository import ClusterRepository
from app.cluster.status import StatusBoard
from app.events.logger import AsyncEventLogger
from app.events.types import NewEvent, Severity
from app.kit.db import create_engine, create_sessionmaker
from app.models import Camera, CameraLease, Event
from app.recording.clip_store import ClipRepository
from tests.cluster.test_ownership import two_members_one_camera
from tests.support.cluster_nodes import TTL_S, Cluster, ClusterNode, until
from tests.support.rtsp import RtspServer

pytestmark = [pytest.mark.postgres]


async def board_for(stack: AsyncExitStack, node: ClusterNode, redis: Redis, keys: Keys) -> StatusBoard:
    """The Redis side the lifespan gives a member (app.cluster.wiring), on the test's own prefix."""

    def running() -> list[CameraStatus]:
        return [node.manager.status(cid) for cid in node.manager.camera_ids()]

    board = await stack.enter_async_context(
        StatusBoard(redis, node.name, running, ttl_s=2 * TTL_S / 3, period_s=0.2, keys=keys)
    )
    await board.ready()
    node.member.board = board
    board.on_change = lambda _cid: node.member.wake()
    return board


@pytest.mark.rtsp
class TestStatusElsewhere:
    async def test_a_non_owner_answers_with_the_owners_status_and_stopped_once_it_is_gone(
        self, cluster: Cluster, cameras_rtsp: RtspServer, redis: Redis, keys: Keys
    ) -> None:
        cid, owner, other = await two_members_one_camera(cluster, cameras_rtsp)
        async with AsyncExitStack() as stack:
            owner_board = await board_for(stack, owner, redis, keys)
            await board_for(stack, other, redis, keys)
            await until(lambda: owner.manager.status(cid).state == "streaming", 20, "streaming")
            # when: the other node is asked (it does not run the camera)
            assert other.manager.get(cid) is None
            seen: dict[str, object] = {}

            async def answered() -> bool:
                status = await other.manager.current_status(cid)
                seen.update(state=status.state, node=status.node, frames=status.frames_in)
                return status.state == "streaming"

            for _ in range(100):
                if await answered():
                    break
                await owner_board.publish_now()
            # then: the owner's status, naming the owner; the list's state too
            assert seen["state"] == "streaming" and seen["node"] == owner.name, seen
            listed = (await other.manager.current_statuses([cid]))[cid]
            assert listed.state == "streaming" and listed.node == owner.name
            # when: the owner stops publishing (its board closes, as when its process stops)
            await owner_board.__aexit__(None, None, None)
            status = await other.manager.current_status(cid)
            # then: today's answer (stopped), still naming the lease holder
            assert status.state == "stopped" and status.node == owner.name
        assert cluster.overlaps == []


@pytest.mark.rtsp
class TestChangesWakeTheOwner:
    async def test_a_change_made_on_another_node_reaches_the_owner_through_redis(
        self, cluster: Cluster, cameras_rtsp: RtspServer, redis: Redis, keys: Keys
    ) -> None:
        cid, owner, other = await two_members_one_camera(cluster, cameras_rtsp)
        async with AsyncExitStack() as stack:
            owner_board = await board_for(stack, owner, redis, keys)
            await board_for(stack, other, redis, keys)
            # when: the camera is changed on the node that does not run it (what CameraService does)
            await cluster.set_camera(cid, analysis_fps=2.0)
            async with other.sessionmaker() as session:
                (row,) = await ClusterRepository(session).cameras([cid])
                config = CameraConfig.from_row(row)
            await other.manager.apply(config)
            # then: the owner was told and restarted it with the new settings; the other runs nothing
            await until(lambda: owner_board.changes_received >= 1, 10, "the owner is told")
            await until(
                lambda: (p := owner.manager.get(cid)) is not None and p.config.analysis_fps == 2.0,
                20,
                "the owner applies it",
            )
            assert other.manager.get(cid) is None
        assert cluster.overlaps == []


async def camera_with_lease(url: str, token: int) -> tuple[int, str]:
    """A camera whose lease row is held by node 'a' with `token`, and one stored event of it."""
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            camera = Camera(name=f"fenced-{token}", url="rtsp://127.0.0.1:1/none", enabled=False)
            session.add(camera)
            await session.flush()
            session.add(CameraLease(camera_id=camera.id, node="a", token=token, expires_at=datetime.now(UTC)))
            event = NewEvent(camera.id, "anomaly", Severity.high, datetime.now(UTC))
            session.add(Event(**{k: v for k, v in event.to_row().items() if k != "fence"}))
            return camera.id, event.id
    finally:
        await engine.dispose()


class TestClipsAreFenced:
    async def test_a_stale_token_does_not_link_the_clip_and_the_current_one_does(
        self, cluster_db_url: str
    ) -> None:
        cid, event_id = await camera_with_lease(cluster_db_url, token=5)
        engine = create_engine(cluster_db_url)
        try:
            sessionmaker = create_sessionmaker(engine)
            repo = ClipRepository(sessionmaker)
            path = f"media/clips/{cid}/{event_id}.mp4"
            # a former owner (token 4): refused, neither linked nor reported missing (not retried)
            assert await repo.set_clips({event_id: (path, 1)}, {event_id: (cid, 4)}) == set()
            assert (await repo.stored([event_id]))[event_id] == (None, 0)
            # the owner (token 5): linked
            assert await repo.set_clips({event_id: (path, 1)}, {event_id: (cid, 5)}) == set()
            assert (await repo.stored([event_id]))[event_id] == (path, 1)
            # single node (no token): no check
            assert await repo.set_clips({event_id: (None, 0)}) == set()
            assert (await repo.stored([event_id]))[event_id] == (None, 0)
        finally:
            await engine.dispose()


class TestSpilledEventsKeepTheirToken:
    async def test_a_replay_is_checked_and_payloads_never_show_the_token(
        self, cluster_db_url: str, tmp_path: Path
    ) -> None:
        cid, _ = await camera_with_lease(cluster_db_url, token=7)
        engine = create_engine(cluster_db_url)
        try:
            sessionmaker = create_sessionmaker(engine)
            spill = tmp_path / "spill"
            stale = NewEvent(cid, "anomaly", Severity.high, datetime.now(UTC), fence=6)
            current = NewEvent(cid, "anomaly", Severity.high, datetime.now(UTC), fence=7)
            assert "fence" not in stale.to_json()  # API, webhook, stream and fan-out payloads
            first = AsyncEventLogger(sessionmaker, spill)
            async with first:
                pass
            first.log(stale)  # after stop: spilled to a file, with its token
            first.log(current)
            assert first.spilled == 2
            async with AsyncEventLogger(sessionmaker, spill) as second:
                assert second.replayed == 2
            async with sessionmaker() as session:
                found = dict((await session.execute(select(Event.id, Event.fence))).all())
            assert stale.id not in found  # checked at replay: a former owner's token
            assert found[current.id] == 7
        finally:
            await engine.dispose()
