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


class MultiCameraManager:
    def __init__(self, deps: PipelineDeps) -> None:
        self._deps = deps
        self._pipelines: dict[int, CameraPipeline] = {}
        self._lock = asyncio.Lock()  # one start/stop at a time per manager: no double pipelines
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
        if self._ownership is not None:
            fence = self._ownership.fence(config.id)
            if fence is None:  # another node's camera: its owner applies the change within a renew period
                await self._stop_local(config.id)
                return
            config = replace(config, fence=fence)
        async with self._lock:
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
            self._pipelines[config.id] = pipeline

    async def _stop_local(self, camera_id: int) -> None:
        async with self._lock:
            pipeline = self._pipelines.pop(camera_id, None)
            if pipeline is not None:
                await pipeline.stop()

    def node_of(self, camera_id: int) -> str | None:
        return self.node_name if self._ownership is None else self._ownership.owner(camera_id)

    async def locate(self, camera_id: int) -> str | None:
        """node_of(), but another node's camera is looked up now (node_of() is as of the last renew)."""
        if self._ownership is None or camera_id in self._pipelines:
            return self.node_of(camera_id)
        return await self._ownership.locate(camera_id)

    async def remove(self, camera_id: int) -> None:
        async with self._lock:
            pipeline = self._pipelines.pop(camera_id, None)
            if pipeline is not None:
                await pipeline.stop()
            self._failures.pop(camera_id, None)
        self._deps.hub.forget(camera_id)

    async def remove_many(self, camera_ids: Collection[int]) -> None:
        """Stop several side by side, not one after another (cluster self-fencing: each must be stopped
        before its lease can expire)."""
        async with self._lock:
            pipelines = [p for cid in camera_ids if (p := self._pipelines.pop(cid, None)) is not None]
            for cid in camera_ids:
                self._failures.pop(cid, None)
            await asyncio.gather(*(p.stop() for p in pipelines), return_exceptions=True)
        for cid in camera_ids:
            self._deps.hub.forget(cid)

    async def stop_all(self) -> None:
        async with self._lock:
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

    def summary(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for pipeline in self._pipelines.values():
            state = pipeline.status().state
            states[state] = states.get(state, 0) + 1
        return {"running": len(self._pipelines), "states": states}
