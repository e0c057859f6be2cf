"""ClusterRepository: every node and lease statement. PostgreSQL's now() is the one clock of the cluster.

Lease rules, each one atomic statement (a row lock orders concurrent nodes; READ COMMITTED re-checks the
WHERE of a waiting UPDATE against the row the winner committed, so two nodes never both acquire):
- acquire: only a free (node NULL) or expired row; token + 1 (the fencing token, never reset).
- renew: only rows still held with my token.
- release: only with my token; the token stays, so writes a former owner still flushes are accepted
  until someone else acquires the camera.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from app.cluster.assignment import CameraView, LeaseView, NodeView, Snapshot
from app.kit.repository import RepositoryBase
from app.models import Camera, CameraLease, Event, Node


class ClusterRepository(RepositoryBase[CameraLease]):
    model = CameraLease

    async def heartbeat(self, name: str, capacity: float, load: Mapping[str, Any], *, joined: bool) -> None:
        """Upsert this node's row at the database's time; `joined` restarts started_at."""
        now = func.now()
        stmt = insert(Node).values(
            name=name, capacity=capacity, started_at=now, heartbeat_at=now, load=dict(load)
        )
        set_: dict[str, Any] = {"capacity": capacity, "heartbeat_at": now, "load": stmt.excluded.load}
        if joined:
            set_["started_at"] = now
        await self.session.execute(stmt.on_conflict_do_update(index_elements=[Node.name], set_=set_))

    async def leave(self, name: str, ttl_s: float) -> None:
        """Shown down at once (a clean stop), instead of after the TTL."""
        await self.session.execute(
            update(Node).where(Node.name == name).values(heartbeat_at=func.now() - timedelta(seconds=ttl_s))
        )

    async def forget_nodes(self, older_than_s: float) -> int:
        """Delete the nodes whose last heartbeat is older than that (long gone; a node down for a
        while is still listed). Their lease rows simply stay free or expired."""
        stmt = delete(Node).where(Node.heartbeat_at < func.now() - timedelta(seconds=older_than_s))
        result = await self.session.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def ensure_leases(self) -> None:
        """A free lease row for every camera that has none yet (cameras made on any node)."""
        missing = select(Camera.id, func.now() - timedelta(seconds=1)).where(
            ~select(CameraLease.camera_id).where(CameraLease.camera_id == Camera.id).exists()
        )
        stmt = insert(CameraLease).from_select(["camera_id", "expires_at"], missing)
        await self.session.execute(stmt.on_conflict_do_nothing(index_elements=[CameraLease.camera_id]))

    async def renew(self, node: str, held: Mapping[int, int], ttl_s: float) -> set[int]:
        """The cameras whose lease is still mine with the token I hold, extended by the TTL."""
        if not held:
            return set()
        mine = and_(
            CameraLease.node == node,
            tuple_(CameraLease.camera_id, CameraLease.token).in_(sorted(held.items())),
        )
        # rows locked in camera_id order first, as the event writes' FOR SHARE check takes them: the
        # two can wait on each other but never deadlock
        locked = await self.session.execute(
            select(CameraLease.camera_id).where(mine).order_by(CameraLease.camera_id).with_for_update()
        )
        ids = list(locked.scalars())
        if not ids:
            return set()
        stmt = (
            update(CameraLease)
            .where(CameraLease.camera_id.in_(ids), mine)
            .values(expires_at=func.now() + timedelta(seconds=ttl_s))
            .returning(CameraLease.camera_id)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def acquire(self, camera_id: int, node: str, ttl_s: float) -> int | None:
        """The new fencing token, or None when another node holds a live lease on it."""
        stmt = (
            update(CameraLease)
            .where(
                CameraLease.camera_id == camera_id,
                or_(CameraLease.node.is_(None), CameraLease.expires_at < func.now()),
            )
            .values(
                node=node,
                token=CameraLease.token + 1,
                expires_at=func.now() + timedelta(seconds=ttl_s),
                move_to=None,
            )
            .returning(CameraLease.token)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def close_former_events(self, camera_id: int, token: int) -> int:
        """End the camera's events a former owner left open (older token: it died before its
        pipeline's stop closed them); called in the transaction that acquires `token`."""
        stmt = (
            update(Event)
            .where(Event.camera_id == camera_id, Event.ended_at.is_(None), Event.fence < token)
            .values(ended_at=func.now(), updated_at=func.now())
        )
        result = await self.session.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, camera_id: int, node: str, token: int) -> bool:
        stmt = (
            update(CameraLease)
            .where(CameraLease.camera_id == camera_id, CameraLease.node == node, CameraLease.token == token)
            .values(node=None, expires_at=func.now())
            .returning(CameraLease.camera_id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def request_move(self, camera_id: int, to_node: str | None) -> None:
        """Ask the owner to hand the camera to `to_node`; None clears an earlier request."""
        await self.session.execute(
            update(CameraLease).where(CameraLease.camera_id == camera_id).values(move_to=to_node)
        )

    async def snapshot(self, ttl_s: float) -> Snapshot:
        """Nodes (up = a heartbeat within the TTL), leases and cameras, all judged by the database's clock."""
        ttl = timedelta(seconds=ttl_s)
        up = Node.heartbeat_at > func.now() - ttl
        nodes = await self.session.execute(select(Node.name, Node.capacity, up, Node.heartbeat_at, Node.load))
        live = and_(CameraLease.node.is_not(None), CameraLease.expires_at > func.now())
        free_s = case((live, 0.0), else_=func.extract("epoch", func.now() - CameraLease.expires_at))
        leases = await self.session.execute(
            select(
                CameraLease.camera_id, CameraLease.node, CameraLease.token, live, free_s, CameraLease.move_to
            )
        )
        cameras = await self.session.execute(
            select(Camera.id, Camera.enabled, Camera.pinned_node, Camera.updated_at)
        )
        return Snapshot(
            nodes={n: NodeView(n, float(cap), bool(u), at, dict(ld or {})) for n, cap, u, at, ld in nodes},
            leases={
                cid: LeaseView(cid, node, int(tok), bool(lv), float(fs), mv)
                for cid, node, tok, lv, fs, mv in leases
            },
            cameras={cid: CameraView(cid, bool(en), pin, at) for cid, en, pin, at in cameras},
        )

    async def lease_of(self, camera_id: int) -> LeaseView | None:
        live = and_(CameraLease.node.is_not(None), CameraLease.expires_at > func.now())
        row = (
            await self.session.execute(
                select(CameraLease.node, CameraLease.token, live, CameraLease.move_to).where(
                    CameraLease.camera_id == camera_id
                )
            )
        ).one_or_none()
        if row is None:
            return None
        node, token, is_live, move_to = row
        return LeaseView(camera_id, node, int(token), bool(is_live), 0.0, move_to)

    async def cameras(self, ids: Sequence[int]) -> Sequence[Camera]:
        if not ids:
            return []
        return (await self.session.execute(select(Camera).where(Camera.id.in_(ids)))).scalars().all()

    async def db_now(self) -> datetime:
        return (await self.session.execute(select(func.now()))).scalar_one()
