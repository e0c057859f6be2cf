"""Camera rules: a repository write, then manager.apply() once committed; no SQL, no HTTP, no commit here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras.config import CameraConfig
from app.cameras.repository import CameraRepository
from app.cameras.schemas import CameraCreate, CameraUpdate
from app.errors import Conflict, Invalid, NotFound
from app.kit.db import after_commit
from app.kit.redact import mask_url
from app.kit.urls import UrlError, validate_camera_url
from app.models import Camera

_NULLABLE = frozenset({"pinned_node"})  # null is a value: unpinned


class CameraRuntime(Protocol):
    """What the service needs from the manager (a narrow seam: tests can pass their own)."""

    def validate_chain(self, specs: list[dict[str, Any]]) -> None: ...
    async def apply(self, config: CameraConfig) -> None: ...
    async def remove(self, camera_id: int) -> None: ...


class CameraService:
    def __init__(
        self,
        session: AsyncSession,
        runtime: CameraRuntime,
        media_dir: Path,
        on_deleted: Sequence[Callable[[int], Awaitable[None]]] = (),
    ) -> None:
        self.repo = CameraRepository(session)
        self.runtime = runtime
        self.media_dir = media_dir  # the only place local video files may come from
        self.on_deleted = on_deleted  # media owners (clips, recordings): delete the camera's files

    async def list(self) -> Sequence[Camera]:
        return await self.repo.list()

    async def get(self, camera_id: int) -> Camera:
        camera = await self.repo.get(camera_id)
        if camera is None:
            raise NotFound("camera", camera_id)
        return camera

    async def create(self, body: CameraCreate) -> Camera:
        data = body.model_dump(mode="json")
        data["url"] = self._url(data["url"])
        camera = Camera(**data)
        self.runtime.validate_chain(CameraConfig.from_row(camera).chain())
        await self._check_name(camera.name)
        await self._flush(camera)
        self._after_commit(partial(self.runtime.apply, CameraConfig.from_row(camera)))
        return camera

    async def update(self, camera_id: int, body: CameraUpdate) -> Camera:
        camera = await self.get(camera_id)
        changes = body.model_dump(mode="json", exclude_unset=True)
        if "name" in changes and changes["name"] != camera.name:
            await self._check_name(changes["name"])
        for key, value in changes.items():
            if value is None and key not in _NULLABLE:
                raise Invalid(f"{key} cannot be null", field=key)
            if key == "url":
                if value == mask_url(camera.url):  # sent back as GET shows it: unchanged, password kept
                    continue
                value = self._url(value)
            setattr(camera, key, value)
        self.runtime.validate_chain(CameraConfig.from_row(camera).chain())
        await self._flush(camera)
        self._after_commit(partial(self.runtime.apply, CameraConfig.from_row(camera)))
        return camera

    async def delete(self, camera_id: int) -> None:
        camera = await self.get(camera_id)
        await self.repo.delete(camera)
        self._after_commit(partial(self.runtime.remove, camera_id))
        for hook in self.on_deleted:  # after the pipeline stopped: nothing writes the files any more
            self._after_commit(partial(hook, camera_id))

    def _url(self, url: str) -> str:
        """Stream URLs as given; a local file only as a regular video file inside the media directory
        (one message for every refusal, and any filesystem error is a 422, never a 500)."""
        try:
            return validate_camera_url(url, self.media_dir)
        except UrlError as exc:
            raise Invalid(str(exc), field="url") from None

    def _after_commit(self, step: Callable[[], Awaitable[None]]) -> None:
        """The runtime follows the database, never the reverse: a pipeline starts or stops once the unit of
        work committed (app.kit.db.complete), so a failed commit never leaves one running for a lost row."""
        after_commit(self.repo.session, step)

    async def _check_name(self, name: str) -> None:
        if await self.repo.get_by_name(name) is not None:
            raise Conflict(f"a camera named {name!r} already exists", field="name")

    async def _flush(self, camera: Camera) -> None:
        try:
            await self.repo.add(camera)
        except IntegrityError as exc:  # a concurrent create with the same name
            raise Conflict(f"a camera named {camera.name!r} already exists", field="name") from exc
