"""MqttBridge: events, camera state and Home Assistant discovery to an MQTT broker; camera on/off back.

A bus subscriber (queued, never on the frame path) and one connection loop. Every message goes through
the MessageQueue and leaves it only when the broker acknowledged it (QoS 1), so events raised while the
broker is down are published, in order, once it returns (up to ARGUS_MQTT_QUEUE_MAX, overflow counted).
Retained state is republished after every reconnect: a broker without persistence forgets it.
The queue lives in memory; events and sensor changes still waiting when Argus stops (the broker away)
are kept in DATA_DIR/mqtt-pending.jsonl and queued first at the next start (a kill -9 loses them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt

from app.events.snapshots import load_snapshot
from app.events.types import NewEvent, Phase
from app.integrations.mqtt.options import MqttOptions
from app.integrations.mqtt.queue import Message, MessageQueue, load_pending, save_pending
from app.integrations.mqtt.topics import (
    CameraInfo,
    Topics,
    discovery_configs,
    event_message,
    event_view,
    sensor_leaf,
)
from app.kit.backoff import Backoff
from app.kit.link import Link
from app.kit.retry import retry
from app.kit.tasks import cancel_and_wait, spawn
from app.metrics import MQTT_CONNECTED, MQTT_MESSAGES, MQTT_QUEUED

log = logging.getLogger("argus.mqtt")

ListCameras = Callable[[], Awaitable[list[CameraInfo] | None]]  # None: not known yet
SetEnabled = Callable[[int, bool], Awaitable[None]]
OPEN_EVENTS_MAX = 4096  # `before` bodies kept for events still open (bounded: a close may never come)


class MqttBridge:
    def __init__(
        self,
        options: MqttOptions,
        *,
        cameras: ListCameras,
        set_enabled: SetEnabled,
        data_dir: Path,
        public_url: str = "",
        poll_s: float = 5.0,
        backoff: Backoff | None = None,
        ack_timeout_s: float = 10.0,
        drain_upstream: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.options = options
        self.topics = Topics(options.prefix, options.discovery_prefix)
        self._list_cameras = cameras
        self._set_enabled = set_enabled
        self._data_dir = data_dir
        self._public_url = public_url.rstrip("/")
        self._poll_s = poll_s
        self._ack_timeout_s = ack_timeout_s
        self._drain_upstream = drain_upstream
        self._queue = MessageQueue(options.queue_max)
        self._pending_file = data_dir / "mqtt-pending.jsonl"
        self._retained: dict[str, bytes] = {}  # what the broker should hold now, republished on connect
        self._cams: dict[int, CameraInfo] = {}
        self._seen_types: dict[int, set[str]] = {}  # event types a camera raised beyond its analyzers'
        self._active: dict[tuple[int, str], set[str]] = {}  # (camera, type) -> open event ids
        self._open: OrderedDict[str, dict[str, Any]] = OrderedDict()  # event id -> its last `after`
        self._snapshots: dict[int, str] = {}  # camera -> snapshot path last published
        self._refreshed_at = 0.0
        self._refresh_lock = asyncio.Lock()
        self.link = Link(options.masked_url, log, MQTT_CONNECTED, backoff)
        self._overflowing = False
        self.published = 0
        self.commands = 0
        self._conn_task: asyncio.Task[Any] | None = None
        self._poll_task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Self:
        log.info("mqtt bridge to %s starting (prefix %s)", self.options.masked_url, self.options.prefix)
        for message in load_pending(self._pending_file):  # what a stop with the broker away left
            self._put(message)
        self._conn_task = spawn(self._connection_loop(), name="argus.mqtt:connection")
        self._poll_task = spawn(self._poll_loop(), name="argus.mqtt:cameras")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await cancel_and_wait(self._poll_task)
        if self._drain_upstream is not None:
            try:  # the cameras' last events (their closes) reach the queue before `offline` does
                await self._drain_upstream()
            except Exception:
                log.exception("mqtt: bus did not drain before stop")
        self._put_retained(self.topics.available, b"offline")
        if self.link.connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.wait_empty(), self._ack_timeout_s)
        await cancel_and_wait(self._conn_task)
        if kept := save_pending(self._pending_file, self._queue.ordered()):
            log.warning(
                "mqtt: broker unreachable: %d message(s) kept in %s for the next start",
                kept,
                self._pending_file,
            )
        self.link.down()
        log.info("mqtt bridge stopped (%d published)", self.published)

    # -- bus side (a queued subscriber: may await, never blocks the publisher) --

    async def consider(self, event: NewEvent) -> None:
        cam = await self._camera(event.camera_id)
        after = event_view(event, cam.name if cam else None, self._public_url)
        if event.phase is Phase.close:
            before = self._open.pop(event.id, None)
        else:
            before = self._open.get(event.id)
            self._open[event.id] = after
            self._open.move_to_end(event.id)
            while len(self._open) > OPEN_EVENTS_MAX:
                self._open.popitem(last=False)
        self._put(Message(self.topics.events, event_message(event, before, after)))
        if cam is not None:
            self._sensor(cam, event)
            await self._snapshot(cam, event)

    async def camera_deleted(self, camera_id: int) -> None:
        """The cameras service calls this after a delete: Home Assistant drops the device at once."""
        cam = self._cams.pop(camera_id, None)
        if cam is not None:
            self._remove(cam)

    def _sensor(self, cam: CameraInfo, event: NewEvent) -> None:
        types = self._seen_types.setdefault(cam.id, set())
        if event.type not in cam.event_types and event.type not in types:
            types.add(event.type)  # a type its analyzers did not announce: give it a sensor now
            self._publish_camera(cam)
        active = self._active.setdefault((cam.id, event.type), set())
        if event.phase is Phase.close:
            active.discard(event.id)
        else:
            active.add(event.id)
        state = b"ON" if active else b"OFF"
        self._put_retained(self.topics.camera(cam.slug, sensor_leaf(event.type)), state, ordered=True)

    async def _snapshot(self, cam: CameraInfo, event: NewEvent) -> None:
        if not event.snapshot_path or self._snapshots.get(cam.id) == event.snapshot_path:
            return
        jpeg = await load_snapshot(self._data_dir, event.snapshot_path)
        if jpeg:
            self._snapshots[cam.id] = event.snapshot_path
            self._put_retained(self.topics.camera(cam.slug, "snapshot"), jpeg)

    # -- cameras: discovery, state, fps, enabled --

    async def _poll_loop(self) -> None:
        while True:
            known = False
            try:
                known = await self.refresh()
            except Exception:
                log.exception("mqtt: reading the cameras failed")
            await asyncio.sleep(self._poll_s if known else min(self._poll_s, 0.2))

    async def refresh(self) -> bool:
        """Publish every camera's discovery, state, fps and switch (unchanged values are not resent);
        False while the cameras are not known yet."""
        async with self._refresh_lock:
            self._refreshed_at = time.monotonic()
            listed = await self._list_cameras()
            if listed is None:
                return False
            cams = {c.id: c for c in listed}
            for old in self._cams.values():
                new = cams.get(old.id)
                if new is None or new.slug != old.slug:
                    self._remove(old)
            self._cams = cams
            for cam in cams.values():
                self._publish_camera(cam)
            return True

    async def _camera(self, camera_id: int | None) -> CameraInfo | None:
        if camera_id is None:
            return None
        if camera_id not in self._cams and time.monotonic() - self._refreshed_at > 1.0:
            await self.refresh()  # a camera created since the last poll
        return self._cams.get(camera_id)

    def _publish_camera(self, cam: CameraInfo) -> None:
        types = sorted(set(cam.event_types) | self._seen_types.get(cam.id, set()))
        if self.topics.discovery_prefix:
            for topic, config in discovery_configs(self.topics, _with_types(cam, types)).items():
                self._put_retained(topic, config)
        self._put_retained(self.topics.camera(cam.slug, "state"), cam.state.encode())
        self._put_retained(self.topics.camera(cam.slug, "fps"), f"{cam.fps:.1f}".encode())
        self._put_retained(self.topics.camera(cam.slug, "enabled/state"), b"ON" if cam.enabled else b"OFF")
        for event_type in types:
            topic = self.topics.camera(cam.slug, sensor_leaf(event_type))
            if topic not in self._retained:
                self._put_retained(topic, b"OFF")

    def _remove(self, cam: CameraInfo) -> None:
        """Empty retained messages: HA deletes the device, the broker forgets the camera's topics."""
        own = f"{self.topics.prefix}/{cam.slug}/"
        device = f"/argus_{cam.slug}/"
        disc = f"{self.topics.discovery_prefix}/"
        for topic in [t for t in self._retained if t.startswith(own) or (t.startswith(disc) and device in t)]:
            self._put_retained(topic, b"")
        for key in [k for k in self._active if k[0] == cam.id]:
            del self._active[key]
        self._snapshots.pop(cam.id, None)
        self._seen_types.pop(cam.id, None)

    async def _command(self, topic: str, payload: bytes) -> None:
        cam_slug = self.topics.camera_of_set(topic)
        cam = next((c for c in self._cams.values() if c.slug == cam_slug), None)
        value = payload.decode("utf-8", "replace").strip().upper()
        if cam is None or value not in ("ON", "OFF"):
            log.warning("mqtt: ignored %r on %s (want ON or OFF for a known camera)", value[:20], topic[:200])
            return
        self.commands += 1
        try:
            await self._set_enabled(cam.id, value == "ON")
        except Exception:
            log.exception("mqtt: could not set camera %s enabled=%s", cam.name, value)
        await self.refresh()

    # -- the broker side --

    def _put(self, message: Message) -> None:
        if not self._queue.put(message):
            MQTT_MESSAGES.labels("dropped").inc()
            if not self._overflowing:
                self._overflowing = True
                log.warning("mqtt: queue full (%d): dropping the oldest events", self._queue.max_events)
        MQTT_QUEUED.set(len(self._queue))

    def _put_retained(self, topic: str, payload: bytes, *, ordered: bool = False) -> None:
        """Retained, and only when it changes the topic's value. `ordered`: every change is published
        in turn (a sensor's ON then OFF), else only the latest value waits to be published."""
        if payload:
            if self._retained.get(topic) == payload:
                return
            self._retained[topic] = payload
        elif self._retained.pop(topic, None) is None:
            return  # nothing retained there: nothing to clear
        self._put(Message(topic, payload, retain=True, latest_only=not ordered))

    async def _connection_loop(self) -> None:
        log.info("mqtt connection loop started")
        try:
            await retry(
                self._session,
                retry_on=lambda exc: isinstance(exc, aiomqtt.MqttError),
                delay=lambda _: self.link.next_delay(),  # the link's backoff restarts once connected
            )
        finally:
            log.info("mqtt connection loop exited")

    async def _session(self) -> None:
        """One connection: serve until it breaks (raises; the link notes why)."""
        try:
            async with self._client() as client:
                await self._serve(client)
        except aiomqtt.MqttError as exc:
            self.link.lost(exc)
            raise
        finally:
            self.link.down()

    def _client(self) -> aiomqtt.Client:
        o = self.options
        tls = aiomqtt.TLSParameters(ca_certs=str(o.ca_file) if o.ca_file else None) if o.tls else None
        return aiomqtt.Client(
            o.host,
            o.port,
            username=o.username,
            password=o.password,
            identifier=f"argus-{o.prefix.replace('/', '-')}-{uuid.uuid4().hex[:8]}",
            will=aiomqtt.Will(self.topics.available, b"offline", qos=1, retain=True),
            tls_params=tls,
            keepalive=30,
            timeout=self._ack_timeout_s,
        )

    async def _serve(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self.topics.enabled_set_filter, qos=1)
        self.link.up()
        self._overflowing = False
        self._queue.put(Message(self.topics.available, b"online", True, latest_only=True), front=True)
        self._retained[self.topics.available] = b"online"
        for topic, payload in self._retained.items():  # a broker without persistence forgot them
            self._queue.put(Message(topic, payload, True, latest_only=True), if_absent=True)
        tasks = [
            asyncio.create_task(self._publish_loop(client), name="argus.mqtt:publish"),
            asyncio.create_task(self._command_loop(client), name="argus.mqtt:commands"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # the MqttError that ended this connection

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            key, message = await self._queue.head()
            await client.publish(message.topic, message.payload, qos=1, retain=message.retain)
            self._queue.done(key, message)
            self.published += 1
            MQTT_MESSAGES.labels("published").inc()
            MQTT_QUEUED.set(len(self._queue))

    async def _command_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            await self._command(str(message.topic), payload)

    @property
    def connected(self) -> bool:
        return self.link.connected

    def stats(self) -> dict[str, Any]:
        return {
            "url": self.options.masked_url,
            "connected": self.link.connected,
            "queued": len(self._queue),
            "dropped": self._queue.dropped,
            "published": self.published,
            "reconnects": self.link.reconnects,
            "commands": self.commands,
            "last_error": self.link.last_error,
        }


def _with_types(cam: CameraInfo, types: list[str]) -> CameraInfo:
    return CameraInfo(cam.id, cam.name, cam.enabled, cam.state, cam.fps, tuple(types))
