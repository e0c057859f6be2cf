"""StatusBoard: one system to the outside. Each node publishes the status of the cameras it runs, and a
camera change made on any node wakes the members of the others.

- Statuses: every `period_s` the node SETs `status:<camera id>` to the camera's CameraStatus JSON with a
  TTL of two renew periods (a stopped or dead owner's entry goes away on its own; a camera this node gave
  back is deleted at the next round). Another node's /api/cameras/{id}/status answers with it.
- Changes: camera CRUD on a node PUBLISHes the camera id on the `cameras` channel; every other node's
  member ticks at once (`on_change`) instead of at its next renew period. Fire-and-forget: without it
  (Redis away, a message lost) the owner still applies the change at its next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterable
from typing import Any, Self

from pydantic import ValidationError
from redis.asyncio import Redis

from app.cameras.schemas import CameraStatus
from app.cluster.channel import listen_forever
from app.cluster.keys import Keys
from app.kit.tasks import cancel_and_wait, spawn

log = logging.getLogger("argus.cluster.status")


class StatusBoard:
    def __init__(
        self,
        redis: Redis,
        node: str,
        running: Callable[[], Iterable[CameraStatus]],
        *,
        ttl_s: float,
        period_s: float = 1.0,
        keys: Keys | None = None,
    ) -> None:
        self._redis = redis
        self.node = node
        self._running = running  # this node's running cameras' statuses, asked every period
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.period_s = period_s
        self.keys = keys or Keys()
        self.on_change: Callable[[int], None] | None = None  # another node changed a camera (member wake)
        self._published: set[int] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._sends: set[asyncio.Task[Any]] = set()
        self._ready = asyncio.Event()
        self.rounds = 0
        self.changes_received = 0
        self.last_error: str | None = None

    async def __aenter__(self) -> Self:
        self._tasks = [
            spawn(self._publish_loop(), name="argus.cluster.status.publish"),
            spawn(self._listen(), name="argus.cluster.status.listen"),
        ]
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in [*self._tasks, *self._sends]:
            await cancel_and_wait(task)
        with contextlib.suppress(Exception):  # stopped: this node runs nothing any more
            if self._published:
                await self._redis.delete(*(self.keys.status(c) for c in self._published))

    async def ready(self, timeout: float = 5.0) -> None:
        """Subscribed to the change channel (tests)."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    # -- statuses --

    async def publish_now(self) -> None:
        """One round: SET the running cameras' statuses (TTL), DEL the ones no longer run here."""
        statuses = {s.camera_id: s for s in self._running()}
        async with self._redis.pipeline(transaction=False) as pipe:
            for cid, status in statuses.items():
                pipe.set(self.keys.status(cid), status.model_dump_json(), px=self.ttl_ms)
            for cid in self._published - statuses.keys():
                pipe.delete(self.keys.status(cid))
            await pipe.execute()
        self._published = set(statuses)
        self.rounds += 1

    async def _publish_loop(self) -> None:
        while True:
            try:
                await self.publish_now()
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: others fall back to their own answer
                if self.last_error is None:
                    log.warning("cluster status: publish failed: %s: %s", type(exc).__name__, exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(self.period_s)

    async def statuses_of(self, camera_ids: Collection[int]) -> dict[int, CameraStatus]:
        """The statuses their owners published (absent: none, expired, or Redis away)."""
        ids = sorted(camera_ids)
        if not ids:
            return {}
        try:
            found = await self._redis.mget([self.keys.status(c) for c in ids])
        except Exception as exc:
            log.debug("cluster status: read failed: %s", exc)
            return {}
        out: dict[int, CameraStatus] = {}
        for cid, raw in zip(ids, found, strict=True):
            if raw is not None:
                with contextlib.suppress(ValidationError, ValueError):
                    out[cid] = CameraStatus.model_validate_json(raw)
        return out

    # -- camera changes --

    def camera_changed(self, camera_id: int) -> None:
        """Never blocks: the PUBLISH runs as its own task."""
        task = spawn(self._announce(camera_id), name="argus.cluster.status.announce")
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _announce(self, camera_id: int) -> None:
        try:
            await self._redis.publish(self.keys.camera_changes, f"{self.node}:{camera_id}")
        except Exception as exc:  # the owner applies it at its next tick
            log.warning("cluster status: change of camera %s not announced: %s", camera_id, exc)

    async def _listen(self) -> None:
        await listen_forever(
            self._redis, self.keys.camera_changes, self.receive, self._ready, "cluster status: change channel"
        )

    def receive(self, payload: bytes | str) -> None:
        text = payload.decode() if isinstance(payload, bytes) else payload
        origin, _, camera = text.rpartition(":")
        if origin == self.node or not camera.isdigit():
            return
        self.changes_received += 1
        if self.on_change is not None:
            self.on_change(int(camera))
