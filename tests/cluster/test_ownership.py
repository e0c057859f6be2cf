"""Fencing, move, pin and camera changes across two ClusterMembers on one PostgreSQL (real RTSP)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from app.cluster.service import move_camera
from app.errors import Conflict, Invalid, NotFound
from app.events.logger import AsyncEventLogger
from app.events.types import NewEvent, Phase, Severity
from app.metrics import EVENTS_FENCED
from app.models import Camera, CameraLease, Event
from tests.support.cluster_nodes import TTL_S, Cluster, ClusterNode, until
from tests.support.rtsp import RtspServer

pytestmark = [pytest.mark.postgres, pytest.mark.rtsp]


async def two_members_one_camera(cluster: Cluster, rtsp: RtspServer) -> tuple[int, ClusterNode, ClusterNode]:
    """(camera id, its owner, the other member) once the camera runs."""
    await cluster.start("a")
    await cluster.start("b")
    (cid,) = await cluster.add_cameras([rtsp.url(1)])
    await until(lambda: any(cid in n.running() for n in cluster.nodes.values()), 20, "the camera runs")
    owner = next(n for n in cluster.nodes.values() if cid in n.running())
    other = next(n for n in cluster.nodes.values() if n is not owner)
    return cid, owner, other


async def stored(node: ClusterNode, event_id: str) -> Event | None:
    async with node.sessionmaker() as session:
        return (await session.execute(select(Event).where(Event.id == event_id))).scalar_one_or_none()


class TestFencing:
    async def test_a_former_owners_late_writes_are_refused(
        self, cluster: Cluster, cameras_rtsp: RtspServer, tmp_path: Path
    ) -> None:
        # given: the owner's logger writes an event with the camera's token
        cid, owner, other = await two_members_one_camera(cluster, cameras_rtsp)
        old = owner.member.fence(cid)
        assert old is not None
        async with AsyncEventLogger(owner.sessionmaker, tmp_path / "spill", flush_size=1) as logger:
            opened = NewEvent(cid, "anomaly", Severity.high, datetime.now(UTC), fence=old)
            logger.log(opened)
            await logger.flush()
            assert (row := await stored(owner, opened.id)) is not None and row.fence == old
            # when: the camera moves to the other member (a new token) and the old owner writes late
            async with owner.sessionmaker.begin() as session:
                await move_camera(session, cid, other.name, TTL_S)
            await until(lambda: other.member.fence(cid) is not None, 20, "the other member holds it")
            new = other.member.fence(cid)
            assert new == old + 1
            # (the event the old owner left open was closed by the new owner as it acquired the camera)
            assert (row := await stored(owner, opened.id)) is not None and row.ended_at is not None
            refused_before = EVENTS_FENCED._value.get()
            late = NewEvent(cid, "anomaly", Severity.high, datetime.now(UTC), fence=old)
            logger.log(late)
            never_stored = NewEvent(cid, "anomaly", Severity.high, datetime.now(UTC), fence=old)
            logger.log(never_stored.evolve(phase=Phase.close, ended_at=datetime.now(UTC)))
            logger.log(opened.evolve(phase=Phase.close, ended_at=datetime.now(UTC)))
            await logger.flush()
            # then: none of the three is stored (a new event, a close, the event's own close); the new
            # owner's token is accepted
            assert await stored(owner, late.id) is None
            assert await stored(owner, never_stored.id) is None
            assert EVENTS_FENCED._value.get() == refused_before + 3
            current = NewEvent(cid, "anomaly", Severity.high, datetime.now(UTC), fence=new)
            logger.log(current)
            await logger.flush()
            assert await stored(owner, current.id) is not None
        assert cluster.overlaps == []

    async def test_events_a_dead_owner_left_open_are_closed_by_the_next_owner(
        self, cluster: Cluster, cameras_rtsp: RtspServer, tmp_path: Path
    ) -> None:
        # given: the owner stored an open event with its token
        cid, owner, other = await two_members_one_camera(cluster, cameras_rtsp)
        async with AsyncEventLogger(owner.sessionmaker, tmp_path / "spill", flush_size=1) as logger:
            opened = NewEvent(cid, "anomaly", Severity.high, datetime.now(UTC), fence=owner.member.fence(cid))
            logger.log(opened)
            await logger.flush()
        assert (row := await stored(owner, opened.id)) is not None and row.ended_at is None
        # when: the owner hangs (never renews, never writes again) and the other member takes over
        owner.member.pause()
        await until(lambda: other.member.fence(cid) is not None, 30, "the other member holds it")
        # then: the event it left open is closed
        assert (row := await stored(other, opened.id)) is not None and row.ended_at is not None
        assert cluster.overlaps == []


class TestMove:
    async def test_move_hands_the_camera_to_the_named_member(
        self, cluster: Cluster, cameras_rtsp: RtspServer
    ) -> None:
        cid, owner, other = await two_members_one_camera(cluster, cameras_rtsp)
        async with owner.sessionmaker.begin() as session:
            moved = await move_camera(session, cid, other.name, TTL_S)
        assert (moved.node, moved.from_node) == (other.name, owner.name)
        await until(lambda: cid in other.running() and cid not in owner.running(), 20, "moved")
        assert other.manager.status(cid).node == other.name
        assert cluster.overlaps == []

    async def test_a_move_back_to_the_owner_clears_the_earlier_request(
        self, cluster: Cluster, cameras_rtsp: RtspServer
    ) -> None:
        # given: a move asked, then (before the owner's next tick) a move back to the owner
        cid, owner, other = await two_members_one_camera(cluster, cameras_rtsp)
        async with owner.sessionmaker.begin() as session:
            await move_camera(session, cid, other.name, TTL_S)
            moved = await move_camera(session, cid, owner.name, TTL_S)
        assert (moved.node, moved.from_node) == (owner.name, owner.name)
        # then: no move is left pending, and the camera stays where it is
        async with owner.sessionmaker() as session:
            lease = await session.get(CameraLease, cid)
            assert lease is not None and lease.move_to is None
        await owner.ticks(3)
        assert cid in owner.running() and cid not in other.running()
        assert cluster.overlaps == []

    async def test_move_refuses_unknown_cameras_and_nodes(
        self, cluster: Cluster, cameras_rtsp: RtspServer
    ) -> None:
        cid, owner, _ = await two_members_one_camera(cluster, cameras_rtsp)
        async with owner.sessionmaker.begin() as session:
            with pytest.raises(NotFound):
                await move_camera(session, cid + 100, owner.name, TTL_S)
            with pytest.raises(Invalid):
                await move_camera(session, cid, "nowhere", TTL_S)
        await cluster.set_camera(cid, pinned_node=owner.name)
        async with owner.sessionmaker.begin() as session:
            with pytest.raises(Conflict):
                await move_camera(session, cid, "b" if owner.name == "a" else "a", TTL_S)


class TestPin:
    async def test_a_pinned_camera_runs_only_on_its_member(
        self, cluster: Cluster, cameras_rtsp: RtspServer
    ) -> None:
        # when: pinned to the member that does not run it
        cid, owner, other = await two_members_one_camera(cluster, cameras_rtsp)
        await cluster.set_camera(cid, pinned_node=other.name)
        # then
        await until(lambda: cid in other.running() and cid not in owner.running(), 20, "on its node")
        # and when its member goes, nobody else takes it
        await other.stop()
        del cluster.nodes[other.name]
        await owner.ticks(int(2 * TTL_S) + 2)  # well past its lease's TTL
        assert cid not in owner.running()
        assert cluster.overlaps == []


class TestCameraChanges:
    async def test_a_change_made_anywhere_reaches_the_owner_within_a_period(
        self, cluster: Cluster, cameras_rtsp: RtspServer
    ) -> None:
        cid, owner, _ = await two_members_one_camera(cluster, cameras_rtsp)
        # when: the row changes behind the owner's back (as camera CRUD on another node does)
        await cluster.set_camera(cid, analysis_fps=2.0)
        # then
        await until(
            lambda: (p := owner.manager.get(cid)) is not None and p.config.analysis_fps == 2.0, 20, "retuned"
        )
        # and a deleted camera stops on its owner
        await cluster.execute(delete(Camera).where(Camera.id == cid))
        await until(lambda: cid not in owner.running(), 20, "stopped after delete")
