"""ClusterMember: this node's part in a cluster; the one owner of its heartbeat, leases and camera choice.

Three tasks, on the member's own small connection pool (member_engine):
- renew, every renew period (TTL / 3) measured from each start: heartbeat + renew the leases held here,
  in one short transaction of their own; nothing else ever delays it.
- tick, every renew period or when woken (camera CRUD): a lease row for new cameras, read nodes + leases
  + cameras, then, each in its own statement: give back what plan() says (pipeline stopped first, then
  the lease released), acquire what it says (at most max_takes; then the pipeline starts with the new
  fencing token), and restart held cameras whose row changed (camera CRUD on any node); no new give-back,
  take or restart once half a renew period is spent, and every database call is bounded by a period.
- watchdog: stops every camera whose lease could expire before it is renewed (see app.cluster.leases):
  it never waits on the database, so a hung connection cannot keep a camera running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any, Protocol, Self

from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.cameras.config import CameraConfig
from app.cameras.schemas import CameraStatus
from app.cluster.assignment import Snapshot, plan
from app.cluster.leases import Clock, LeaseBook, Leases
from app.cluster.nodes import load
from app.cluster.repository import ClusterRepository
from app.cluster.status import StatusBoard
from app.config import Settings
from app.kit.db import create_engine, create_sessionmaker
from app.kit.tasks import cancel_and_wait, spawn
from app.metrics import CLUSTER_LEASE_CHANGES, CLUSTER_LEASES

log = logging.getLogger("argus.cluster")

FORGET_NODES_S = 3600.0  # a node without a heartbeat for this long (or 360 TTLs) leaves /api/nodes


class CameraRunner(Protocol):
    """What the member needs from the camera manager (MultiCameraManager)."""

    def govern(self, ownership: Any) -> None: ...
    async def apply(self, config: CameraConfig) -> None: ...
    async def remove(self, camera_id: int) -> None: ...
    async def remove_many(self, camera_ids: Collection[int]) -> None: ...


class ClusterMember:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        manager: CameraRunner,
        *,
        name: str,
        capacity: float = 1.0,
        ttl_s: float = 10.0,
        before_release: Callable[[], Awaitable[None]] | None = None,
        max_moves: int = 2,
        max_takes: int = 4,
        clock: Clock | None = None,
        engine: AsyncEngine | None = None,
        lookup: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.name = name
        self.instance = uuid.uuid4().hex[:16]  # this process (two under one name are refused)
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.renew_s = ttl_s / 3
        self._sessionmaker = sessionmaker
        self._engine = engine  # its own small pool (from_settings), disposed on exit
        self._lookup = lookup or sessionmaker  # locate(), on the API's path: the app's pool
        self._manager = manager
        self._before_release = before_release  # e.g. the event logger's flush: last writes keep the token
        self._max_moves = max_moves
        self._max_takes = max_takes  # per tick: the rest waits for the next one
        book = LeaseBook(ttl_s, margin_s=self.renew_s / 2, **({"clock": clock} if clock else {}))
        self.leases = Leases(sessionmaker, name, book)
        self.snapshot: Snapshot | None = None
        self._applied: dict[int, datetime] = {}  # camera id -> updated_at of the row its pipeline runs
        self._moved_here: set[int] = set()  # moved here by hand: rebalance leaves them where they were put
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._failing = False
        self._paused = False
        self._joined = False  # the first successful heartbeat restarts the node's started_at
        self._stopping: set[asyncio.Task[Any]] = set()  # lost cameras being stopped off the renew loop
        self.ticks = 0  # completed ticks (tests wait on it)
        # the Redis side (app.cluster.status), set by the lifespan: statuses and change signals
        self.board: StatusBoard | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        manager: CameraRunner,
        before_release: Callable[[], Awaitable[None]] | None = None,
    ) -> Self:
        engine = member_engine(settings.database_url, settings.lease_ttl_s)
        return cls(
            create_sessionmaker(engine),
            manager,
            name=settings.node_name,
            capacity=settings.node_capacity,
            ttl_s=settings.lease_ttl_s,
            before_release=before_release,
            engine=engine,
            lookup=sessionmaker,
        )

    # -- the manager's ownership hook ----------------------------------------------------------------

    def fence(self, camera_id: int) -> int | None:
        """This node's fencing token for the camera; None: another node (or none yet) runs it."""
        return self.leases.book.fence(camera_id)

    def owner(self, camera_id: int) -> str | None:
        if camera_id in self.leases.book:
            return self.name
        return self.snapshot.owner(camera_id) if self.snapshot is not None else None

    async def locate(self, camera_id: int) -> str | None:
        """The camera's owner as the database says now (owner() is as of the last tick)."""
        if camera_id in self.leases.book:
            return self.name
        try:
            async with asyncio.timeout(self.renew_s), self._lookup() as session:
                lease = await ClusterRepository(session).lease_of(camera_id)
        except Exception:  # the database is away: the last tick's view
            return self.owner(camera_id)
        return lease.node if lease is not None and lease.live else None

    def held(self) -> set[int]:
        return self.leases.book.ids()

    def changed(self, camera_id: int) -> None:
        """A camera was made, changed or deleted here but this node does not run it: tick now, and tell
        the other nodes' members to (the owner applies it at once; at its next tick without Redis)."""
        self.wake()
        if self.board is not None:
            self.board.camera_changed(camera_id)

    async def remote_statuses(self, camera_ids: Collection[int]) -> dict[int, CameraStatus]:
        """Statuses their owners published (other nodes' cameras); empty without Redis."""
        return await self.board.statuses_of(camera_ids) if self.board is not None else {}

    # -- lifecycle -----------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self._claim_name()
        except BaseException:
            if self._engine is not None:
                await self._engine.dispose()
            raise
        self._manager.govern(self)
        try:
            await self._renew()
            await self._tick()
        except Exception as exc:  # the loops retry; the node still starts (the API answers)
            self._note_failure(exc)
        self._tasks = [
            spawn(self._renewing(), name=f"argus.cluster.renew:{self.name}"),
            spawn(self._run(), name=f"argus.cluster:{self.name}"),
            spawn(self._watchdog(), name=f"argus.cluster.watchdog:{self.name}"),
        ]
        log.info(
            "cluster member %s started (ttl %.1fs, renew every %.1fs)", self.name, self.ttl_s, self.renew_s
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        for task in self._tasks:
            await cancel_and_wait(task)
        await asyncio.gather(*self._stopping, return_exceptions=True)
        # hand every camera back now instead of after the TTL: all stopped first, then one flush, then
        # the releases and the node's farewell in one transaction
        tokens = self.leases.book.tokens()
        for cid in tokens:
            self.leases.book.drop(cid)
        await self._manager.remove_many(sorted(tokens))
        try:
            async with asyncio.timeout(self.renew_s):
                if self._before_release is not None and tokens:
                    await self._before_release()
                async with self._sessionmaker.begin() as session:
                    repo = ClusterRepository(session)
                    for cid, token in tokens.items():
                        await repo.release(cid, self.name, token)
                    await repo.leave(self.name, self.ttl_s)
        except Exception as exc:  # the database is away: the leases simply expire
            log.warning("cluster member %s could not hand its cameras back: %s", self.name, _why(exc))
        if self._engine is not None:
            await self._engine.dispose()
        log.info("cluster member %s stopped", self.name)

    async def _claim_name(self) -> None:
        """Refuse to run beside another live process under the same node name (each would release the
        other's leases as orphans). A live heartbeat of another instance may be this node's previous
        process, killed a moment ago: refused only when that heartbeat still moves 1.5 periods later."""
        try:
            first = await self._name_holder()
            if first is None:
                return
            await asyncio.sleep(1.5 * self.renew_s)
            again = await self._name_holder()
        except Exception as exc:  # the database is away: the loops retry, nothing to compare with
            self._note_failure(exc)
            return
        if again is not None and again != first:
            raise NodeNameTaken(
                f"another Argus process runs as cluster node {self.name!r} (its heartbeat is live): "
                "give each process its own ARGUS_NODE_NAME (default: the host name)"
            )

    async def _name_holder(self) -> tuple[str, datetime] | None:
        """(instance, heartbeat) of another process's live heartbeat under this name, else None."""
        async with self._db(), self._sessionmaker() as session:
            node = (await ClusterRepository(session).snapshot(self.ttl_s)).nodes.get(self.name)
        if node is None or not node.up:
            return None
        instance = node.load.get("instance")
        if not isinstance(instance, str) or instance == self.instance:
            return None
        return instance, node.heartbeat_at

    def wake(self) -> None:
        """Tick now (a camera was made or changed here) instead of at the next period."""
        self._wake.set()

    def pause(self, paused: bool = True) -> None:
        """Stop renewing (tests: a node that hangs without dying); the watchdog still fences."""
        self._paused = paused

    # -- the loop ------------------------------------------------------------------------------------

    async def _renewing(self) -> None:
        """Heartbeat + renew on a fixed period measured from each start, whatever the tick is doing (a
        slow give-back, take or restart never delays a renew)."""
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            began = loop.time()
            if not self._paused:
                try:
                    await self._renew()
                except Exception as exc:
                    self._note_failure(exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, self.renew_s - (loop.time() - began))):
                    await self._stop.wait()

    async def _run(self) -> None:
        """The tick: every renew period, or at once when woken (camera CRUD)."""
        while not self._stop.is_set():
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.renew_s):
                    await self._wake.wait()
            if self._stop.is_set():
                break
            if self._paused:
                continue
            try:
                await self._tick()
            except Exception as exc:
                self._note_failure(exc)

    async def _watchdog(self) -> None:
        while not self._stop.is_set():
            if expiring := self.leases.book.expiring():
                for cid in expiring:
                    self.leases.book.drop(cid)
                    self._applied.pop(cid, None)
                    self._moved_here.discard(cid)
                CLUSTER_LEASE_CHANGES.labels("self_fenced").inc(len(expiring))
                log.warning(
                    "cameras %s: leases not renewed in time, stopping them here (self-fencing)", expiring
                )
                await self._manager.remove_many(expiring)
            CLUSTER_LEASES.set(len(self.held()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(0.25, self.renew_s / 4)):
                    await self._stop.wait()

    async def _renew(self) -> None:
        """Heartbeat and renew in one short transaction of their own; lost leases stop off this loop."""
        book = self.leases.book
        sent = book.clock()
        # a hung database counts as a failed renew
        async with self._db(), self._sessionmaker.begin() as session:
            repo = ClusterRepository(session)
            info = {
                "cameras": len(book.ids()),
                "load": load(len(book.ids()), self.capacity),
                "instance": self.instance,  # this process: another one under the same name is refused
            }
            await repo.heartbeat(self.name, self.capacity, info, joined=not self._joined)
            renewed, lost = await self.leases.renew(repo)
        self._joined = True
        book.renewed(renewed, sent)
        if self._failing:
            log.warning("cluster member %s reaches the database again", self.name)
            self._failing = False
        # another node has it, or it was deleted (only the token sent: not one acquired again meanwhile)
        gone = sorted(cid for cid, token in lost.items() if book.drop(cid, token) is not None)
        if gone:
            CLUSTER_LEASE_CHANGES.labels("lost").inc(len(gone))
            log.warning("cameras %s: leases lost, stopping them here", gone)
            for cid in gone:
                self._applied.pop(cid, None)
                self._moved_here.discard(cid)
            task = spawn(self._manager.remove_many(gone), name=f"argus.cluster.lost:{self.name}")
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def _tick(self) -> None:
        """Look (lease rows for new cameras, then a snapshot), then give back, take and restart what
        plan() says for at most half a renew period; the rest waits for the next tick."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            async with self._db(), self._sessionmaker.begin() as session:
                repo = ClusterRepository(session)
                await repo.ensure_leases()
                await repo.forget_nodes(max(FORGET_NODES_S, 360 * self.ttl_s))
        except IntegrityError as exc:  # a camera deleted meanwhile: its row comes at the next tick
            log.debug("cluster member %s: lease rows not made this tick: %s", self.name, _why(exc))
        async with self._db(), self._sessionmaker() as session:
            snap = await ClusterRepository(session).snapshot(self.ttl_s)
        self.snapshot = snap
        await self._release_orphans(snap)
        decided = plan(
            self.name,
            snap,
            self.leases.book.ids(),
            self.ttl_s,
            self._max_moves,
            keep=frozenset(self._moved_here),
        )

        def in_time() -> bool:
            return loop.time() - began < self.renew_s / 2

        for cid in decided.release:
            if not in_time():
                break
            await self._give_back(cid)
        for cid in decided.take[: self._max_takes]:
            if not in_time():
                break
            await self._take(cid, snap)
        await self._refresh(snap, in_time)
        self.ticks += 1

    def _db(self) -> asyncio.Timeout:
        """Every database call of the member: a hung connection never sticks a loop."""
        return asyncio.timeout(self.renew_s)

    async def _release_orphans(self, snap: Snapshot) -> None:
        """Leases in my name that this process does not run: a previous process of this node that died
        (restarted under the same name), or a renew that landed just after the watchdog stopped the
        camera. Freed at once instead of waiting out their TTL."""
        book = self.leases.book
        for lease in snap.leases.values():
            if lease.live and lease.node == self.name and lease.camera_id not in book:
                async with self._db():
                    await self.leases.release(lease.camera_id, lease.token)
                log.info("camera %s: released an orphaned lease (token %d)", lease.camera_id, lease.token)

    async def _take(self, camera_id: int, snap: Snapshot) -> None:
        async with self._db():  # cut short after the commit: an orphan, released at the next tick
            token = await self.leases.acquire(camera_id)
        if token is None:
            return  # another node was first
        CLUSTER_LEASE_CHANGES.labels("acquired").inc()
        log.info("camera %s: acquired (token %d)", camera_id, token)
        lease = snap.leases.get(camera_id)
        if lease is not None and lease.move_to == self.name:
            self._moved_here.add(camera_id)
        await self._start(camera_id)

    async def _give_back(self, camera_id: int) -> None:
        token = self.leases.book.drop(camera_id)
        if token is None:
            return
        await self._manager.remove(camera_id)  # stopped before anyone else may take it
        self._applied.pop(camera_id, None)
        self._moved_here.discard(camera_id)
        if self._before_release is not None:  # bounded: a logger waiting on a database that went away
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.renew_s):
                    await self._before_release()
        async with self._db():  # failed: the lease is an orphan of this node, released at the next tick
            await self.leases.release(camera_id, token)
        CLUSTER_LEASE_CHANGES.labels("released").inc()
        log.info("camera %s: released (token %d)", camera_id, token)

    async def _start(self, camera_id: int) -> None:
        async with self._db(), self._sessionmaker() as session:
            rows = await ClusterRepository(session).cameras([camera_id])
            configs = [(CameraConfig.from_row(r), r.updated_at) for r in rows]
        for config, updated_at in configs:
            self._applied[camera_id] = updated_at
            await self._manager.apply(config)  # the manager asks fence(): started with this token

    async def _refresh(self, snap: Snapshot, in_time: Callable[[], bool]) -> None:
        """Held cameras whose row changed since their pipeline started (CRUD on another node)."""
        for cid in sorted(self.held()):
            if not in_time():
                break
            camera = snap.cameras.get(cid)
            if camera is not None and self._applied.get(cid) != camera.updated_at:
                await self._start(cid)

    def _note_failure(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning("cluster member %s cannot reach the database: %s", self.name, _why(exc))
        self._failing = True


class NodeNameTaken(RuntimeError):
    """Another live process already runs under this ARGUS_NODE_NAME."""


def member_engine(url: str, ttl_s: float) -> AsyncEngine:
    """The member's own small pool: renews never queue behind the app's queries, a statement gives up
    after a renew period, and the server drops the connection of a node that vanished (keepalives) and
    its idle transaction (row locks freed well before its leases could be taken over)."""
    if make_url(url).get_backend_name() != "postgresql":
        return create_engine(url)
    renew_s = max(1.0, ttl_s / 3)
    return create_engine(
        url,
        pool_size=2,
        max_overflow=1,
        pool_timeout=renew_s,
        connect_args={
            "timeout": renew_s,  # connecting
            "command_timeout": renew_s,
            "server_settings": {
                "application_name": "argus-cluster-member",
                "tcp_keepalives_idle": "5",
                "tcp_keepalives_interval": "2",
                "tcp_keepalives_count": "3",
                "idle_in_transaction_session_timeout": str(int(max(1.0, ttl_s) * 1000)),
            },
        },
    )


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # a timeout has no message
