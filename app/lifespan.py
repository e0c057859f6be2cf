"""Build the runtime in flow order, yield it to requests, stop it in reverse (AsyncExitStack).

Each domain wires itself in its own block below; subscribers attach to the bus here, never inside
the publisher. What it builds is one typed field each of Runtime (app/runtime.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.alerts import AlertEngine, DispatchPolicy, WebhookDispatcher
from app.analyzers.registry import AnalyzerRegistry
from app.analyzers.tracing import Tracer
from app.auth.keys import KeyVerifier
from app.cameras.integration import camera_lister, camera_switch
from app.cameras.manager import MultiCameraManager
from app.cameras.pipeline import PipelineDeps
from app.cameras.schemas import CameraStatus
from app.cluster.member import ClusterMember
from app.cluster.wiring import RedisParts, enter_redis_parts
from app.config import Settings
from app.events.bus import EventBus
from app.events.ingest import IngestCommitter
from app.events.logger import AsyncEventLogger
from app.events.stream import EventStreamHub
from app.events.types import NewEvent, Phase
from app.inference.pool import ResourcePool
from app.integrations.forward import EdgeForwarder, default_name
from app.integrations.mqtt.bridge import MqttBridge
from app.integrations.vlm import VlmDescriber
from app.kit.db import create_engine, create_sessionmaker
from app.live.hub import LiveHub
from app.metrics import EVENTS
from app.migrate import pending_revisions, upgrade_async
from app.recording.clips import ClipRecorder, pipeline_feeds
from app.recording.continuous import Recorder, pipeline_targets
from app.recording.retention import Retention
from app.restream.restreamer import RestreamManager, load_restreams
from app.runtime import Runtime

log = logging.getLogger("argus")


class SchemaOutOfDate(RuntimeError):
    pass


@dataclass
class BuiltLater:
    """Parts that earlier parts look up, though they are built after them (so they stop before them):
    None until their block below has run."""

    manager: MultiCameraManager | None = None
    retention: Retention | None = None


async def prepare_database(settings: Settings, engine: AsyncEngine) -> None:
    if settings.is_sqlite and settings.auto_migrate:
        await upgrade_async(settings.database_url)
    elif await pending_revisions(engine, settings.database_url):
        raise SchemaOutOfDate(
            "the database schema is out of date: run `argus migrate` (ARGUS_DATABASE_URL="
            f"{engine.url.render_as_string(hide_password=True)})"
        )


def count_event(event: NewEvent) -> None:
    """One place counts events, whichever path raised them (pipeline, ingest API)."""
    if event.phase == Phase.open:
        EVENTS.labels(event.type, str(event.severity)).inc()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    settings: Settings = app.state.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        await prepare_database(settings, engine)
        sessionmaker = create_sessionmaker(engine)
        verifier = KeyVerifier(settings.static_api_keys, sessionmaker)
        stack.push_async_callback(verifier.aclose)  # last_used_at writes before dispose
        bus = EventBus()
        stack.push_async_callback(bus.close)
        bus.subscribe("metrics", count_event, direct=True)
        later = BuiltLater()

        # -- inference (pool) --
        pool = await stack.enter_async_context(ResourcePool.from_settings(settings))
        tracer = Tracer.from_settings(settings)
        stack.callback(tracer.close)
        # -- clips (entered before the logger, so it stops after it: a clip's last row update finds the
        # event stored; its writers get their last packets when the cameras stop, which is first) --
        clips = await stack.enter_async_context(
            ClipRecorder(
                settings.data_dir,
                sessionmaker,
                pipeline_feeds(lambda cid: later.manager.get(cid) if later.manager is not None else None),
                max_s=settings.clip_max_s,
                may_write=lambda: later.retention.space_ok() if later.retention is not None else True,
            )
        )
        bus.subscribe("clips", clips.consider, direct=True)  # consider() only starts a thread or sets a time
        # -- events (logger) --
        event_logger = await stack.enter_async_context(AsyncEventLogger.from_settings(sessionmaker, settings))
        bus.subscribe("event_logger", event_logger.log, direct=True)
        # -- alerts --
        dispatcher = await stack.enter_async_context(
            WebhookDispatcher(sessionmaker, DispatchPolicy.from_settings(settings.alerts))
        )
        alert_engine = await stack.enter_async_context(
            AlertEngine.from_settings(sessionmaker, settings.alerts, on_alert=dispatcher.wake)
        )
        # direct: the engine's own bounded queue is the only one (offer() never blocks; overflow spills)
        bus.subscribe("alerts", alert_engine.offer, direct=True)

        # -- ingest (after the alert engine: it stops first, so what it commits still reaches alerts) --
        async def ingested(events: list[NewEvent]) -> None:
            for event in events:  # stored already; the alert engine is asked directly, and waited for
                bus.publish(event, skip=("event_logger", "alerts"))
            await alert_engine.decide(events)

        ingest = await stack.enter_async_context(
            IngestCommitter(
                sessionmaker,
                ingested,
                max_batch=settings.ingest_max_batch,
                max_wait_s=settings.ingest_max_wait_ms / 1000,
            )
        )
        # -- live --
        hub = await stack.enter_async_context(
            LiveHub(settings.live_fps, settings.live_jpeg_quality, settings.live_max_width)
        )
        bus.subscribe("live", hub.publish_event)
        # -- event stream (GET /api/events/stream) --
        event_stream = EventStreamHub()
        bus.subscribe("event_stream", event_stream.publish, direct=True)  # only puts on client queues
        # -- vlm --
        vlm: VlmDescriber | None = None
        if settings.vlm_base_url and not settings.cluster:  # cluster: worker processes (below)
            vlm = await stack.enter_async_context(VlmDescriber.from_settings(settings, bus))
            bus.subscribe("vlm", vlm.consider, direct=True)  # consider() only enqueues, never blocks
        # -- cluster, Redis half: live relay, event fan-out, dedup windows, digest lock, VLM work stream --
        redis_parts: RedisParts | None = None
        if settings.cluster:

            def runs_camera(camera_id: int) -> bool:  # this node holds the camera's lease now
                return later.manager is not None and later.manager.get(camera_id) is not None

            def running() -> list[CameraStatus]:  # published for the other nodes' /api/cameras
                m = later.manager
                return [] if m is None else [m.status(cid) for cid in m.camera_ids()]

            redis_parts = await enter_redis_parts(
                stack, settings, bus=bus, hub=hub, event_stream=event_stream,
                alert_engine=alert_engine, dispatcher=dispatcher, runs_camera=runs_camera, running=running,
            )  # fmt: skip
        # -- mqtt (before the cameras: they stop first, so their last events are published) --
        mqtt: MqttBridge | None = None
        if (mqtt_options := settings.mqtt) is not None:
            mqtt = await stack.enter_async_context(
                MqttBridge(
                    mqtt_options,
                    cameras=camera_lister(sessionmaker, lambda: later.manager),
                    set_enabled=camera_switch(
                        sessionmaker, lambda: later.manager, settings.resolved_media_dir
                    ),
                    data_dir=settings.data_dir,
                    public_url=settings.public_url,
                    drain_upstream=bus.drain,
                )
            )
            bus.subscribe("mqtt", mqtt.consider)
        # -- edge -> central forwarding (reads committed events back; the bus only nudges it) --
        forwarder: EdgeForwarder | None = None
        if settings.forward_url:
            forwarder = await stack.enter_async_context(
                EdgeForwarder(
                    sessionmaker,
                    url=settings.forward_url,
                    key=settings.forward_key,
                    name=settings.forward_name or default_name(),
                    data_dir=settings.data_dir,
                    transport=settings.forward_transport,
                    media=settings.forward_media,
                    public_url=settings.public_url,
                )
            )
            bus.subscribe("forward", forwarder.consider, direct=True)
        # -- cameras (manager: last to start, first to stop) --
        registry = AnalyzerRegistry()
        deps = PipelineDeps(settings, pool, bus, hub, registry, tracer)
        manager = later.manager = await stack.enter_async_context(MultiCameraManager(deps))
        # -- cluster, PostgreSQL half: only the cameras this node leases run here (app/cluster/member.py) --
        member: ClusterMember | None = None
        if settings.cluster:
            joining = ClusterMember.from_settings(settings, sessionmaker, manager, event_logger.flush)
            if redis_parts is not None:
                joining.board = redis_parts.board
                redis_parts.board.on_change = lambda _cid: joining.wake()  # another node changed a camera
            member = await stack.enter_async_context(joining)
        else:
            await manager.load(sessionmaker)
        # -- restreams (after the cameras and the hub: they stop first) --
        restream = await stack.enter_async_context(RestreamManager(hub))
        await load_restreams(sessionmaker, restream)
        # -- recordings (after the cameras, so they stop first: each open segment is finished) --
        retention = later.retention = await stack.enter_async_context(
            Retention.from_settings(sessionmaker, settings)
        )
        recorder = await stack.enter_async_context(
            Recorder(
                sessionmaker,
                settings.data_dir,
                settings.segment_s,
                pipeline_targets(manager),
                may_write=retention.space_ok,
                on_cameras_gone=retention.kick,
                cameras=manager.camera_ids,
            )
        )

        rt = Runtime(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            verifier=verifier,
            bus=bus,
            pool=pool,
            tracer=tracer,
            clips=clips,
            event_logger=event_logger,
            alert_dispatcher=dispatcher,
            alerts=alert_engine,
            ingest=ingest,
            hub=hub,
            event_stream=event_stream,
            vlm=vlm,
            mqtt=mqtt,
            forwarder=forwarder,
            registry=registry,
            manager=manager,
            member=member,
            restream=restream,
            retention=retention,
            recorder=recorder,
        )
        app.state.runtime = rt
        parts = rt.part_names()
        log.info("argus ready: %d parts (%s)", len(parts), ", ".join(parts))
        yield {"runtime": rt}
        log.info("argus stopping")
