"""Runtime: every long-lived part the lifespan builds, one typed field each, in flow order.

The lifespan (app/lifespan.py) builds the parts and stores the Runtime on `app.state.runtime`;
endpoints take the parts they need through app/deps.py. The part types are imported for type checking
only, so importing this module (as app/deps.py and app/auth/deps.py do) loads no domain code.

Adding a part: one field here (an optional one defaults to None) and the keyword in lifespan's
`Runtime(...)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from app.alerts import AlertEngine, WebhookDispatcher
    from app.analyzers.registry import AnalyzerRegistry
    from app.analyzers.tracing import Tracer
    from app.auth.keys import KeyVerifier
    from app.cameras.manager import MultiCameraManager
    from app.cluster.member import ClusterMember
    from app.config import Settings
    from app.events.bus import EventBus
    from app.events.ingest import IngestCommitter
    from app.events.logger import AsyncEventLogger
    from app.events.stream import EventStreamHub
    from app.inference.pool import ResourcePool
    from app.integrations.forward import EdgeForwarder
    from app.integrations.mqtt.bridge import MqttBridge
    from app.integrations.vlm import VlmDescriber
    from app.live.hub import LiveHub
    from app.recording.clips import ClipRecorder
    from app.recording.continuous import Recorder
    from app.recording.retention import Retention
    from app.restream.restreamer import RestreamManager


@dataclass(kw_only=True, eq=False)
class Runtime:
    # -- foundations --
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    verifier: KeyVerifier  # API keys: static ones and the hashed rows
    bus: EventBus
    # -- inference --
    pool: ResourcePool
    tracer: Tracer
    # -- events and what consumes them (bus subscribers) --
    clips: ClipRecorder
    event_logger: AsyncEventLogger
    alert_dispatcher: WebhookDispatcher
    alerts: AlertEngine
    ingest: IngestCommitter
    hub: LiveHub
    event_stream: EventStreamHub
    vlm: VlmDescriber | None = None  # ARGUS_VLM_BASE_URL
    mqtt: MqttBridge | None = None  # ARGUS_MQTT_*
    forwarder: EdgeForwarder | None = None  # ARGUS_FORWARD_URL
    # -- cameras and what reads their pipelines --
    registry: AnalyzerRegistry
    manager: MultiCameraManager
    member: ClusterMember | None = None  # ARGUS_REDIS_URL: this node's camera leases
    restream: RestreamManager
    retention: Retention
    recorder: Recorder

    def part_names(self) -> list[str]:
        """The parts built, in flow order (the foundations and the optional parts left off excluded)."""
        skip = {"settings", "engine", "sessionmaker", "verifier", "bus"}
        return [f.name for f in fields(self) if f.name not in skip and getattr(self, f.name) is not None]

    def camera_deleted_hooks(self) -> list[Callable[[int], Awaitable[None]]]:
        """Every part that keeps files or state per camera (clips, restreams, MQTT) forgets a deleted one."""
        hooks = []
        for f in fields(self):
            hook = getattr(getattr(self, f.name), "camera_deleted", None)
            if hook is not None:
                hooks.append(hook)
        return hooks


def runtime_of(conn: HTTPConnection) -> Runtime:
    """The Runtime the lifespan stored on the app (an HTTP request or a WebSocket)."""
    runtime: Runtime = conn.app.state.runtime
    return runtime


def has_runtime(conn: HTTPConnection) -> bool:
    """False before the lifespan has built the Runtime (and in an app run without it)."""
    return hasattr(conn.app.state, "runtime")
