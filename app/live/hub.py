"""LiveHub: newest frame per camera; one JPEG per watched camera per tick, fanned out to every subscriber.

Cost scales with watched cameras, not with clients: a camera nobody watches is never encoded, and the
same bytes go to every subscriber. Each client has a one-slot latest-wins outbox per camera, so a slow
client drops only its own frames and never delays the tick of anyone else.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self

import numpy as np

from app.events.types import NewEvent
from app.kit.jpeg import encode_jpeg, fit_width
from app.kit.rate import RateMeter
from app.kit.tasks import cancel_and_wait, spawn
from app.live.protocol import MAX_FPS, pack_frame_header
from app.metrics import LIVE_CLIENTS, LIVE_ENCODES, LIVE_FRAMES_DROPPED, LIVE_FRAMES_SENT
from app.stream.frame import Frame

log = logging.getLogger("argus.live")
TEXT_BACKLOG = 256  # JSON messages (events, states) a client may owe before the oldest are dropped
SNAPSHOT_FRESH_S = 1.0  # a cached JPEG this young is good enough for /snapshot.jpg


@dataclass(frozen=True, slots=True)
class Encoded:
    camera_id: int
    frame: Frame  # identity tells whether a newer frame has arrived since
    jpeg: bytes
    message: bytes  # header + JPEG, built once, sent to every subscriber as is
    width: int
    height: int
    encoded_at: float  # monotonic


class Closed:
    """Sentinel returned by Client.next_message once the hub has let the client go."""


CLOSED = Closed()


class RemoteLive(Protocol):
    """Another node's side of the live view (app.cluster.relay); None on a single node.

    The hub tells it what local viewers watch and hands it each JPEG it encodes for a camera other
    nodes asked for (`set_remote_demand`); frames it receives for cameras owned elsewhere come back
    through `deliver`. Both calls are non-blocking.
    """

    def watched(self, camera_id: int, fps: float) -> None: ...  # local viewers' rate (0: none left)

    def encoded(self, camera_id: int, message: bytes) -> None: ...  # header + JPEG, as sent to clients


@dataclass(slots=True)
class _Sub:
    fps: float
    due: float = 0.0  # loop time this client's next frame of the camera is due (0: at once)


class Client:
    """One viewer's outbox: latest-wins slots for frames and detections, a short queue for JSON."""

    def __init__(self, client_id: int) -> None:
        self.id = client_id
        self.subs: dict[int, _Sub] = {}
        self._frames: dict[int, bytes] = {}
        self._detections: dict[int, str] = {}
        self._texts: deque[str] = deque()
        self._wake = asyncio.Event()
        self.closed = False
        self.frames_sent = 0
        self.frames_dropped = 0
        self.texts_dropped = 0

    def put_frame(self, camera_id: int, message: bytes) -> None:
        if self._frames.pop(camera_id, None) is not None:
            self.frames_dropped += 1
            LIVE_FRAMES_DROPPED.inc()
        self._frames[camera_id] = message  # re-inserted last: the writer serves cameras oldest first
        self._wake.set()

    def put_detections(self, camera_id: int, text: str) -> None:
        self._detections.pop(camera_id, None)
        self._detections[camera_id] = text
        self._wake.set()

    def put_text(self, text: str) -> None:
        if len(self._texts) >= TEXT_BACKLOG:
            self._texts.popleft()
            self.texts_dropped += 1
        self._texts.append(text)
        self._wake.set()

    def put_json(self, message: dict[str, Any]) -> None:
        self.put_text(json.dumps(message, separators=(",", ":")))

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next_message(self, timeout: float) -> str | bytes | Closed | None:
        """The next thing to send: JSON first, then detections, then frames; None after `timeout` idle."""
        while True:
            if self.closed:
                return CLOSED
            if self._texts:
                return self._texts.popleft()
            if self._detections:
                return self._detections.pop(next(iter(self._detections)))
            if self._frames:
                return self._frames.pop(next(iter(self._frames)))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None

    def sent(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.frames_sent += 1
            LIVE_FRAMES_SENT.inc()


class LiveHub:
    def __init__(self, fps: float = 5.0, jpeg_quality: int = 80, max_width: int = 960) -> None:
        self.default_fps = min(fps, MAX_FPS)
        self.jpeg_quality = jpeg_quality
        self.max_width = max_width
        self._latest: dict[int, Frame] = {}
        self._encoded: dict[int, Encoded] = {}
        self._states: dict[int, str] = {}  # last camera_state message, replayed to new subscribers
        self._watchers: dict[int, dict[Client, _Sub]] = {}
        self._fresh: dict[int, asyncio.Event] = {}
        self._tickers: dict[int, asyncio.Task[None]] = {}
        self._encodes: dict[int, int] = {}
        self._encode_rates: dict[int, RateMeter] = {}
        self._snapshot_encodes = 0
        self._stale_ticks = 0
        self._clients: set[Client] = set()
        self._ids = itertools.count(1)
        # cluster mode only (wired by the lifespan): other nodes' viewers and this node's state changes
        self.remote: RemoteLive | None = None
        self.on_state: Callable[[int, str], None] | None = None
        self._remote_fps: dict[int, float] = {}  # camera -> fps other nodes' viewers want from us

    async def __aenter__(self) -> Self:
        log.info(
            "live hub started (%.1f fps, q%d, max %d px)", self.default_fps, self.jpeg_quality, self.max_width
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in list(self._clients):
            client.close()
        for task in list(self._tickers.values()):
            await cancel_and_wait(task)
        self._tickers.clear()
        log.info("live hub stopped")

    # -- the cameras pipeline calls these --

    def offer(self, frame: Frame) -> None:
        """Keep a reference to the newest frame; no copy, no encode (that happens only on a tick)."""
        self._latest[frame.camera_id] = frame
        fresh = self._fresh.get(frame.camera_id)
        if fresh is not None:
            fresh.set()

    def demand(self, camera_id: int) -> float:
        """Frames per second the live view wants from this camera (here or, in a cluster, on other
        nodes); 0 when nobody watches."""
        return max(self._local_demand(camera_id), self._remote_fps.get(camera_id, 0.0))

    def _local_demand(self, camera_id: int) -> float:
        watchers = self._watchers.get(camera_id)
        return max((s.fps for s in watchers.values()), default=0.0) if watchers else 0.0

    # -- the cluster relay calls these (never on a single node) --

    def set_remote_demand(self, camera_id: int, fps: float) -> None:
        """Viewers on other nodes want this (local) camera at `fps` (0: nobody there any more): it is
        then encoded once per tick as for a local viewer, and each JPEG handed to `remote.encoded`."""
        if fps > 0:
            self._remote_fps[camera_id] = min(fps, MAX_FPS)
            self._ensure_ticker(camera_id)
        elif self._remote_fps.pop(camera_id, None) is not None and camera_id not in self._watchers:
            self._stop_ticker(camera_id)

    def deliver(self, camera_id: int, message: bytes) -> None:
        """A frame of a camera another node owns (already encoded there): to local viewers, each on
        its own schedule with the same one-slot latest-wins outbox as local frames."""
        fps = self._local_demand(camera_id)
        if fps > 0:
            self._fan_out(camera_id, message, 1.0 / fps, asyncio.get_running_loop().time())

    def receive_state(self, camera_id: int, text: str) -> None:
        """A camera_state message from the node that runs the camera: kept and sent like a local one."""
        self._states[camera_id] = text
        for client in self._watchers.get(camera_id, {}):
            client.put_text(text)

    def publish_state(self, camera_id: int, state: str, detail: dict[str, Any]) -> None:
        text = _dumps(
            {
                "type": "camera_state",
                "camera_id": camera_id,
                "state": state,
                "detail": detail,
                "at": time.time(),
            }
        )
        self._states[camera_id] = text
        if self.on_state is not None:
            self.on_state(camera_id, text)
        if state == "stopped":  # its last frame is history now: never serve it as live or as a snapshot
            self._latest.pop(camera_id, None)
            self._encoded.pop(camera_id, None)
        for client in self._watchers.get(camera_id, {}):
            client.put_text(text)

    def publish_detections(
        self,
        camera_id: int,
        seq: int,
        captured_at: float,
        width: int,
        height: int,
        detections: list[dict[str, Any]],
    ) -> None:
        watchers = self._watchers.get(camera_id)
        if not watchers:
            return
        text = _dumps(
            {
                "type": "detections",
                "camera_id": camera_id,
                "seq": seq,
                "captured_at": captured_at,
                "width": width,
                "height": height,
                "detections": detections,
            }
        )
        for client in watchers:
            client.put_detections(camera_id, text)

    def publish_event(self, event: NewEvent) -> None:
        """Bus subscriber: the event goes to the camera's subscribers (camera-less events to everyone)."""
        data = event.to_json()
        # a URL the client can fetch (with its key), never the server's file path
        data["snapshot_url"] = f"/api/events/{event.id}/snapshot.jpg" if data.pop("snapshot_path") else None
        text = _dumps({"type": "event", "event": data})
        clients = self._clients if event.camera_id is None else self._watchers.get(event.camera_id, {})
        for client in clients:
            client.put_text(text)

    async def snapshot_jpeg(self, camera_id: int) -> bytes | None:
        """The live encoder's last JPEG when fresh, else the newest frame encoded now; None without frames."""
        frame = self._latest.get(camera_id)
        cached = self._encoded.get(camera_id)
        if cached is not None and (
            cached.frame is frame or time.monotonic() - cached.encoded_at < SNAPSHOT_FRESH_S
        ):
            return cached.jpeg
        if frame is None:
            return None
        encoded = await self._encode(frame)
        self._snapshot_encodes += 1
        if self._latest.get(camera_id) is not None:  # not forgotten meanwhile
            self._encoded.setdefault(camera_id, encoded)
        return encoded.jpeg

    def forget(self, camera_id: int) -> None:
        """The camera was deleted: tell its viewers, drop its subscriptions, frames and ticker."""
        self.publish_state(camera_id, "removed", {})
        for client in self._watchers.pop(camera_id, {}):
            client.subs.pop(camera_id, None)
        self._stop_ticker(camera_id)
        tables = (self._latest, self._encoded, self._states, self._encodes, self._encode_rates)
        for table in (*tables, self._remote_fps):
            table.pop(camera_id, None)

    def knows(self, camera_id: int) -> bool:
        """True when the runtime has produced frames or a state for this camera."""
        return camera_id in self._latest or camera_id in self._states

    # -- the /ws/live endpoint calls these --

    def connect(self) -> Client:
        client = Client(next(self._ids))
        self._clients.add(client)
        LIVE_CLIENTS.set(len(self._clients))
        return client

    def disconnect(self, client: Client) -> None:
        self.unsubscribe(client, list(client.subs))
        self._clients.discard(client)
        client.close()
        LIVE_CLIENTS.set(len(self._clients))

    def fps_for(self, requested: float | None) -> float:
        return min(requested or self.default_fps, MAX_FPS)

    def subscribe(self, client: Client, camera_ids: list[int], fps: float | None = None) -> None:
        """Watch these cameras at `fps` (default ARGUS_LIVE_FPS); each one's last state is replayed."""
        fps = self.fps_for(fps)
        for camera_id in camera_ids:
            watchers = self._watchers.setdefault(camera_id, {})
            sub = _Sub(fps)
            client.subs[camera_id] = sub
            watchers[client] = sub
            state = self._states.get(camera_id)
            if state is not None:
                client.put_text(state)
            self._ensure_ticker(camera_id)
            if self.remote is not None:
                self.remote.watched(camera_id, self._local_demand(camera_id))

    def unsubscribe(self, client: Client, camera_ids: list[int]) -> None:
        for camera_id in camera_ids:
            client.subs.pop(camera_id, None)
            watchers = self._watchers.get(camera_id)
            if watchers is None:
                continue
            watchers.pop(client, None)
            if not watchers:
                del self._watchers[camera_id]
                if camera_id not in self._remote_fps:
                    self._stop_ticker(camera_id)
            if self.remote is not None:
                self.remote.watched(camera_id, self._local_demand(camera_id))

    def stats(self) -> dict[str, Any]:
        cameras = {
            camera_id: {
                "watchers": len(self._watchers.get(camera_id, {})),
                "fps": self.demand(camera_id),
                "encodes": self._encodes.get(camera_id, 0),
                "encodes_per_s": self._encode_rates[camera_id].rate()
                if camera_id in self._encode_rates
                else 0.0,
            }
            for camera_id in sorted(set(self._latest) | set(self._watchers) | set(self._encodes))
        }
        return {
            "clients": len(self._clients),
            "cameras": cameras,
            "encodes": sum(self._encodes.values()),
            "snapshot_encodes": self._snapshot_encodes,
            "stale_ticks": self._stale_ticks,
            "frames_sent": sum(c.frames_sent for c in self._clients),
            "frames_dropped": sum(c.frames_dropped for c in self._clients),
        }

    # -- internals --

    def _ensure_ticker(self, camera_id: int) -> None:
        task = self._tickers.get(camera_id)
        if task is None or task.done():
            self._fresh[camera_id] = asyncio.Event()
            self._tickers[camera_id] = spawn(self._tick(camera_id), name=f"argus.live:{camera_id}")

    def _stop_ticker(self, camera_id: int) -> None:
        task = self._tickers.pop(camera_id, None)
        self._fresh.pop(camera_id, None)
        if task is not None:
            task.cancel()

    async def _tick(self, camera_id: int) -> None:
        """Encode the newest frame once per period at the highest fps any subscriber asked for.

        When no newer frame is there at the due time, it waits (up to one period) for the next one
        instead of skipping the tick: a source that converts frames at exactly the demanded rate then
        still gets every frame shown, whatever its phase against this clock.
        """
        loop = asyncio.get_running_loop()
        fresh = self._fresh[camera_id]
        last: Frame | None = None
        due = loop.time()
        log.debug("live ticker %s started", camera_id)
        while True:
            fps = self.demand(camera_id)
            if fps <= 0:
                return
            period = 1.0 / fps
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = self._latest.get(camera_id)
            if frame is None or frame is last:
                fresh.clear()
                try:
                    await asyncio.wait_for(fresh.wait(), period)
                except TimeoutError:
                    self._stale_ticks += 1
                    due = loop.time()
                    continue
                frame = self._latest.get(camera_id)
                if frame is None:
                    continue
            last = frame
            encoded = await self._encode(frame)
            self._count_encode(camera_id)
            self._encoded[camera_id] = encoded
            self._fan_out(camera_id, encoded.message, period, loop.time())
            if self.remote is not None and camera_id in self._remote_fps:
                self.remote.encoded(camera_id, encoded.message)
            due += period
            if due < loop.time() - period:  # fell behind (slow encode, stalled source): no catch-up burst
                due = loop.time()

    async def _encode(self, frame: Frame) -> Encoded:
        jpeg, width, height = await asyncio.to_thread(
            _encode_fitted, frame.image, self.jpeg_quality, self.max_width
        )
        header = pack_frame_header(frame.camera_id, frame.seq, frame.captured_at, width, height)
        return Encoded(frame.camera_id, frame, jpeg, header + jpeg, width, height, time.monotonic())

    def _count_encode(self, camera_id: int) -> None:
        self._encodes[camera_id] = self._encodes.get(camera_id, 0) + 1
        self._encode_rates.setdefault(camera_id, RateMeter()).tick()
        LIVE_ENCODES.labels(camera=str(camera_id)).inc()

    def _fan_out(self, camera_id: int, message: bytes, tick_period: float, now: float) -> None:
        """Every subscriber gets the same bytes, each on its own schedule (a 2-fps client on a 5-fps camera).

        The schedule, not the tick count, decides: a frame is due when the client's next slot falls
        within half a tick, and a late tick still serves the slot it missed, so a client gets its full
        rate even while the camera ticks a little slower than asked (a loaded machine).
        """
        slack = tick_period / 2
        for client, sub in self._watchers.get(camera_id, {}).items():
            if now + slack >= sub.due:
                period = 1.0 / sub.fps
                # on schedule (or a little late): next slot one period on; far behind: restart from now
                sub.due = (sub.due if sub.due > now - period else now) + period
                client.put_frame(camera_id, message)


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=str)


def _encode_fitted(image: np.ndarray, quality: int, max_width: int) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height) of the frame fitted to max_width: blocking, for a thread."""
    fitted = fit_width(image, max_width)
    height, width = fitted.shape[:2]
    return encode_jpeg(fitted, quality), width, height
