"""MultiCameraManager: camera_id -> CameraPipeline; start, replace and stop pipelines as cameras change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import replace
from typing import Any, Protocol, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cameras.config import CameraConfig
from app.cameras.pipeline import CameraPipeline, PipelineDeps
from app.cameras.repository import CameraRepository
from app.cameras.schemas import CameraStatus
from app.kit.redact import mask_text

log = logging.getLogger("argus.cameras")


class Ownership(Protocol):
    """Cluster mode: which cameras this node runs (app.cluster.member.ClusterMember)."""

    def fence(self, camera_id: int) -> int | None: ...  # this node's lease token; None: not this node's
    def owner(self, camera_id: int) -> str | None: ...  # the node holding its lease (None: free)
    async def locate(self, camera_id: int) -> str | None: ...  # owner(), read from the database now
    def changed(self, camera_id: int) -> None: ...  # CRUD here on a camera this node does not run
    async def remote_statuses(self, camera_ids: Collection[int]) -> dict[int, CameraStatus]: ...


class MultiCameraManager:
    def __init__(self, deps: PipelineDeps) -> None:
        self._deps = deps
        self._pipelines: dict[int, CameraPipeline] = {}
        # one start/stop at a time per camera (no double pipelines), cameras side by side: a slow stop
        # (seconds) never delays another camera's, e.g. one whose lease is about to expire
        self._locks: dict[int, asyncio.Lock] = {}
        self._closed = False  # stop_all() ran: nothing starts any more
        self._failures: dict[int, str] = {}  # camera id -> why its pipeline is not running
        self._ownership: Ownership | None = None  # None: one node, every enabled camera runs here
        self.node_name = deps.settings.node_name

    def govern(self, ownership: Ownership | None) -> None:
        """Cluster mode: from now on only cameras whose lease this node holds run here, with its token."""
        self._ownership = ownership

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_all()

    async def load(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        async with sessionmaker() as session:
            rows = await CameraRepository(session).list_enabled()
            configs = [CameraConfig.from_row(r) for r in rows]
        for config in configs:
            await self.apply(config)
        log.info("started %d camera pipeline(s)", len(self._pipelines))

    def validate_chain(self, specs: list[dict[str, Any]]) -> None:
        """ChainError (422 naming the analyzer or option) for unknown analyzers, bad options, cycles."""
        self._deps.registry.validate_chain(specs, models=self._deps.pool.names())

    async def apply(self, config: CameraConfig) -> None:
        """Start, restart with the new settings, or stop the camera's pipeline to match `config`."""
        async with self._lock_of(config.id):  # the fence is read under it: a self-fencing stop waits
            if self._ownership is not None:
                fence = self._ownership.fence(config.id)
                if fence is None:  # another node's camera: its owner applies it (woken, or at its tick)
                    await self._stop_now(config.id)
                    self._ownership.changed(config.id)
                    return
                config = replace(config, fence=fence)
            current = self._pipelines.get(config.id)
            if current is not None and config.enabled and current.can_retune(config):
                current.retune(config)  # same stream and analyzers: no reconnect
                return
            old = self._pipelines.pop(config.id, None)
            if old is not None:
                await old.stop()
            self._failures.pop(config.id, None)
            if not config.enabled:
                self._deps.hub.publish_state(config.id, "stopped", {})
                return
            try:
                pipeline = CameraPipeline(config, self._deps)
                await pipeline.start()
            except Exception as exc:  # e.g. its file vanished or a model was removed since validation
                log.exception("camera %s (%s) could not start", config.id, config.name)
                self._failures[config.id] = mask_text(f"pipeline failed to start: {exc}")
                self._deps.hub.publish_state(config.id, "stopped", {"error": self._failures[config.id]})
                return
            if self._closed:  # stop_all() ran while it started
                await pipeline.stop()
                return
            self._pipelines[config.id] = pipeline

    def _lock_of(self, camera_id: int) -> asyncio.Lock:
        return self._locks.setdefault(camera_id, asyncio.Lock())

    async def _stop_now(self, camera_id: int) -> CameraPipeline | None:
        """Stop the camera's pipeline, if any; the caller holds the camera's lock."""
        pipeline = self._pipelines.pop(camera_id, None)
        if pipeline is not None:
            await pipeline.stop()
        return pipeline

    def node_of(self, camera_id: int) -> str | None:
        return self.node_name if self._ownership is None else self._ownership.owner(camera_id)

    async def locate(self, camera_id: int) -> str | None:
        """node_of(), but another node's camera is looked up now (node_of() is as of the last renew)."""
        if self._ownership is None or camera_id in self._pipelines:
            return self.node_of(camera_id)
        return await self._ownership.locate(camera_id)

    async def remove(self, camera_id: int) -> None:
        async with self._lock_of(camera_id):
            pipeline = await self._stop_now(camera_id)
            self._failures.pop(camera_id, None)
        self._deps.hub.forget(camera_id)
        if pipeline is None and self._ownership is not None:  # deleted here, run elsewhere: wake its owner
            self._ownership.changed(camera_id)

    async def remove_many(self, camera_ids: Collection[int]) -> None:
        """Stop several side by side, not one after another (cluster self-fencing: each must be stopped
        before its lease can expire)."""

        async def stop(camera_id: int) -> None:
            async with self._lock_of(camera_id):
                self._failures.pop(camera_id, None)
                await self._stop_now(camera_id)

        await asyncio.gather(*(stop(cid) for cid in camera_ids), return_exceptions=True)
        for cid in camera_ids:
            self._deps.hub.forget(cid)

    async def stop_all(self) -> None:
        self._closed = True
        pipelines, self._pipelines = list(self._pipelines.values()), {}
        await asyncio.gather(*(p.stop() for p in pipelines), return_exceptions=True)

    def get(self, camera_id: int) -> CameraPipeline | None:
        return self._pipelines.get(camera_id)

    def camera_ids(self) -> set[int]:
        return set(self._pipelines)

    def status(self, camera_id: int) -> CameraStatus:
        pipeline = self._pipelines.get(camera_id)
        if pipeline is None:
            return CameraStatus(
                camera_id=camera_id,
                state="stopped",
                fps_in=0.0,
                fps_analyzed=0.0,
                last_error=self._failures.get(camera_id),
                node=self.node_of(camera_id),
            )
        return pipeline.status().model_copy(update={"node": self.node_of(camera_id)})

    async def current_status(self, camera_id: int) -> CameraStatus:
        """status() with the node read now; another node's camera: the status its owner published
        (app.cluster.status), else stopped (its owner is down or has not published yet)."""
        status = self.status(camera_id)
        if self._ownership is None or camera_id in self._pipelines:
            return status
        node = await self._ownership.locate(camera_id)
        if node is not None:
            remote = (await self._ownership.remote_statuses([camera_id])).get(camera_id)
            if remote is not None:
                return remote.model_copy(update={"node": node})
        return status.model_copy(update={"node": node})

    async def current_statuses(self, camera_ids: Collection[int]) -> dict[int, CameraStatus]:
        """Each camera's status; other nodes' cameras as their owners published them (one read), naming
        the owner; else stopped, naming the lease holder as of the last renew."""
        statuses = {cid: self.status(cid) for cid in camera_ids}
        if self._ownership is not None:
            elsewhere = [cid for cid in camera_ids if cid not in self._pipelines]
            statuses.update(await self._ownership.remote_statuses(elsewhere))
        return statuses

    def summary(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for pipeline in self._pipelines.values():
            state = pipeline.status().state
            states[state] = states.get(state, 0) + 1
        return {"running": len(self._pipelines), "states": states}
