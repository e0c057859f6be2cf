"""Dependencies, named once as Annotated aliases. Tests replace them with app.dependency_overrides.

Each takes an `HTTPConnection`, so the same alias works in HTTP routes and WebSocket routes. The part
types are imported for type checking only (FastAPI never resolves a dependency's own annotation), so an
endpoint module that imports this one loads no other domain's code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.auth.deps import ApiKeyDep
from app.kit.db import session_scope
from app.runtime import Runtime, runtime_of

if TYPE_CHECKING:
    from app.alerts import AlertEngine, WebhookDispatcher
    from app.cameras.manager import MultiCameraManager
    from app.config import Settings
    from app.events.ingest import IngestCommitter
    from app.events.logger import AsyncEventLogger
    from app.events.stream import EventStreamHub
    from app.inference.pool import ResourcePool
    from app.live.hub import LiveHub
    from app.recording.clips import ClipRecorder
    from app.restream.restreamer import RestreamManager


def get_runtime(conn: HTTPConnection) -> Runtime:
    return runtime_of(conn)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(rt: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async for session in session_scope(rt.sessionmaker):
        yield session


# scope="function": commit before the response is sent, so a client that reads right after a write
# sees it (a request-scoped yield dependency would commit only after the response went out).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# -- one alias per part an endpoint takes (each reads the Runtime when the request comes) --
def get_settings(rt: RuntimeDep) -> Settings:
    return rt.settings


def get_sessionmaker(rt: RuntimeDep) -> async_sessionmaker[AsyncSession]:
    return rt.sessionmaker


def get_pool(rt: RuntimeDep) -> ResourcePool:
    return rt.pool


def get_manager(rt: RuntimeDep) -> MultiCameraManager:
    return rt.manager


def get_hub(rt: RuntimeDep) -> LiveHub:
    return rt.hub


def get_ingest(rt: RuntimeDep) -> IngestCommitter:
    return rt.ingest


def get_event_logger(rt: RuntimeDep) -> AsyncEventLogger:
    return rt.event_logger


def get_event_stream(rt: RuntimeDep) -> EventStreamHub:
    return rt.event_stream


def get_clips(rt: RuntimeDep) -> ClipRecorder:
    return rt.clips


def get_alert_engine(rt: RuntimeDep) -> AlertEngine:
    return rt.alerts


def get_dispatcher(rt: RuntimeDep) -> WebhookDispatcher:
    return rt.alert_dispatcher


def get_restream(rt: RuntimeDep) -> RestreamManager:
    return rt.restream


SettingsDep = Annotated["Settings", Depends(get_settings)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
PoolDep = Annotated["ResourcePool", Depends(get_pool)]
ManagerDep = Annotated["MultiCameraManager", Depends(get_manager)]
HubDep = Annotated["LiveHub", Depends(get_hub)]
IngestDep = Annotated["IngestCommitter", Depends(get_ingest)]
EventLoggerDep = Annotated["AsyncEventLogger", Depends(get_event_logger)]
EventStreamDep = Annotated["EventStreamHub", Depends(get_event_stream)]
ClipsDep = Annotated["ClipRecorder", Depends(get_clips)]
AlertEngineDep = Annotated["AlertEngine", Depends(get_alert_engine)]
DispatcherDep = Annotated["WebhookDispatcher", Depends(get_dispatcher)]
RestreamDep = Annotated["RestreamManager", Depends(get_restream)]

__all__ = [
    "AlertEngineDep",
    "ApiKeyDep",
    "ClipsDep",
    "DispatcherDep",
    "EventLoggerDep",
    "EventStreamDep",
    "HubDep",
    "IngestDep",
    "ManagerDep",
    "PoolDep",
    "RestreamDep",
    "RuntimeDep",
    "SessionDep",
    "SessionmakerDep",
    "SettingsDep",
    "get_runtime",
    "get_session",
]
