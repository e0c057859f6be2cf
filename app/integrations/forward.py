"""EdgeForwarder: this site's events to a central Argus (store and forward).

The durable queue is the events table itself: every event the logger or the ingest API committed is
read back in the order it changed, sent in frames, and the position of the last acknowledged frame is
kept in `DATA_DIR/forward-position.json` (replaced atomically). Nothing committed is lost to a broken
link, a central outage or a kill -9 here: after a restart or a reconnect, sending resumes from that
position (less a slack of a few seconds, for rows committed out of time order), and the central side
stores each event once by its id, so what is sent twice is harmless.

Transport: one WebSocket to `<ARGUS_FORWARD_URL>/ws/ingest` (`hello`, then frames of up to FRAME events,
each acknowledged once stored), or, with ARGUS_FORWARD_TRANSPORT=http, gzip batches POSTed to
`/api/events:batch`. Reconnects with exponential backoff. Snapshots and clips stay here: the central side
gets their links (absolute when ARGUS_PUBLIC_URL is set).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import httpx
import websockets
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cameras.repository import CameraRepository
from app.events.repository import ChangeKey, EventFilter, EventRepository, change_key
from app.events.snapshots import load_snapshot
from app.events.types import NewEvent
from app.kit.backoff import Backoff
from app.kit.link import Link
from app.kit.redact import mask_url
from app.kit.retry import retry
from app.kit.tasks import cancel_and_wait, spawn
from app.metrics import FORWARD_CONNECTED, FORWARD_EVENTS, FORWARD_QUEUED
from app.models import Event

log = logging.getLogger("argus.forward")
FRAME = 200  # events per frame at most (and per database page)
WS_FRAME_BYTES = 3 * 1024 * 1024  # the central side takes frames of up to 4 MB
HTTP_FRAME_BYTES = 700 * 1024  # a batch body of up to ARGUS_MAX_BODY_BYTES (1 MB by default) there
MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024  # a larger snapshot is sent as a link only
SLACK_S = 2.0  # rows committed up to this much out of time order are still found
ERROR_MAX = 300
# a broken link (ConnectionError is an OSError): reconnect with backoff; anything else ends the loop
LINK_ERRORS = (OSError, TimeoutError, httpx.HTTPError, websockets.WebSocketException)


def default_name() -> str:
    """This host's name, fit for the central side's edge names (letters, digits, `_ . -`, 40 at most)."""
    return re.sub(r"[^\w.-]", "-", socket.gethostname())[:40] or "edge"


class ForwardRejected(Exception):
    """The central side refused a frame for good (a bug or a version mismatch): logged, skipped."""


class Transport(Protocol):
    async def send(self, frame: int, events: list[dict[str, Any]]) -> dict[str, Any]: ...


class WebSocketTransport:
    def __init__(self, ws: Any, ack_timeout_s: float) -> None:
        self._ws = ws
        self._ack_timeout_s = ack_timeout_s

    async def send(self, frame: int, events: list[dict[str, Any]]) -> dict[str, Any]:
        await self._ws.send(json.dumps({"type": "events", "frame": frame, "events": events}, default=str))
        reply = json.loads(await asyncio.wait_for(self._ws.recv(), self._ack_timeout_s))
        if reply.get("frame") != frame:
            raise ConnectionError(f"acknowledgement for frame {reply.get('frame')}, not {frame}")
        if reply.get("type") == "nack":
            raise ForwardRejected(str(reply.get("error"))[:ERROR_MAX])
        return reply


class HttpTransport:
    def __init__(self, client: httpx.AsyncClient, url: str, edge: str) -> None:
        self._client = client
        self._url = url
        self._edge = edge

    async def send(self, frame: int, events: list[dict[str, Any]]) -> dict[str, Any]:
        body = gzip.compress(json.dumps({"edge": self._edge, "events": events}, default=str).encode())
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        response = await self._client.post(self._url, content=body, headers=headers)
        if response.status_code == 422:
            raise ForwardRejected(response.text[:ERROR_MAX])
        response.raise_for_status()
        return response.json()


class EdgeForwarder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        url: str,
        key: str,
        name: str,
        data_dir: Path,
        transport: Literal["websocket", "http"] = "websocket",
        media: Literal["links", "snapshots"] = "links",
        public_url: str = "",
        poll_s: float = 1.0,
        backoff: Backoff | None = None,
        ack_timeout_s: float = 30.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._url = url.rstrip("/")
        self._key = key
        self.name = name
        self._transport_kind = transport
        self._media = media
        self._data_dir = data_dir
        # a frame must fit the central side's limits: a WebSocket message, or ARGUS_MAX_BODY_BYTES (1 MB)
        self._frame_bytes = HTTP_FRAME_BYTES if transport == "http" else WS_FRAME_BYTES
        self._public_url = public_url.rstrip("/")
        self._poll_s = poll_s
        self._ack_timeout_s = ack_timeout_s
        self._position_file = data_dir / "forward-position.json"
        self._position: ChangeKey | None = None
        self._wake = asyncio.Event()
        self._frame = 0
        self._task: asyncio.Task[Any] | None = None
        self.link = Link(mask_url(self._url), log, FORWARD_CONNECTED, backoff)
        self.forwarded = 0
        self.rejected = 0
        self.queued = 0

    async def __aenter__(self) -> Self:
        self._position = self._load_position()
        if self._position is None:  # first start: forward what happens from now on
            now = datetime.now(UTC)
            self._save_position((now, now, ""))
        log.info("forwarding events to %s as %r (%s)", mask_url(self._url), self.name, self._transport_kind)
        self._task = spawn(self._run(), name="argus.forward")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await cancel_and_wait(self._task)
        self.link.down()
        log.info("forwarder stopped (%d forwarded)", self.forwarded)

    def consider(self, event: NewEvent) -> None:
        """Direct bus subscriber: only a nudge; what is sent is read back from the database."""
        self._wake.set()

    # -- the loop --

    async def _run(self) -> None:
        log.info("forward loop started")

        async def lost(exc: BaseException, _: int) -> None:
            with contextlib.suppress(Exception):  # the database may be what is failing
                await self._update_queued()

        try:
            await retry(
                self._session,
                retry_on=lambda exc: isinstance(exc, LINK_ERRORS),
                delay=lambda _: self.link.next_delay(),  # the link's backoff restarts once connected
                on_error=lost,
            )
        finally:
            log.info("forward loop exited")

    async def _session(self) -> None:
        """One connection: send until it breaks (raises; the link notes why)."""
        try:
            async with self._connect() as transport:
                self.link.up()
                await self._pump(transport)
        except LINK_ERRORS as exc:
            self.link.lost(exc)
            raise
        finally:
            self.link.down()

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[Transport]:
        auth = {"Authorization": f"Bearer {self._key}"}
        if self._transport_kind == "http":
            async with httpx.AsyncClient(headers=auth, timeout=self._ack_timeout_s) as client:
                yield HttpTransport(client, f"{self._url}/api/events:batch", self.name)
            return
        ws_url = "ws" + self._url.removeprefix("http") + "/ws/ingest"
        async with websockets.connect(
            ws_url, additional_headers=auth, open_timeout=10, max_size=2**22, ping_interval=20
        ) as ws:
            await ws.send(json.dumps({"type": "hello", "edge": self.name}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), self._ack_timeout_s))
            if welcome.get("type") != "welcome":
                raise ConnectionError(f"unexpected answer to hello: {str(welcome)[:100]}")
            yield WebSocketTransport(ws, self._ack_timeout_s)

    async def _pump(self, transport: Transport) -> None:
        """Send every change after the position, oldest first; then wait for more."""
        sent: dict[str, datetime] = {}  # event id -> updated_at sent (within the slack window)
        while True:
            assert self._position is not None
            since = self._position[0] - timedelta(seconds=SLACK_S)
            after: ChangeKey | None = None
            while True:
                rows, names = await self._read(since, after)
                fresh = [r for r in rows if sent.get(r.id) != r.updated_at]
                if fresh:
                    payloads = [await self._payload(r, names, with_snapshot=r.id not in sent) for r in fresh]
                    for chunk in _chunks(payloads, self._frame_bytes):
                        await self._send(transport, chunk)
                    sent.update((r.id, r.updated_at) for r in fresh)
                if rows:
                    after = change_key(rows[-1])
                    if fresh:
                        self._save_position(max(after, self._position))
                if len(rows) < FRAME:
                    break
            sent = {k: v for k, v in sent.items() if v >= since}
            await self._update_queued()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            # the logger writes a moment after the bus: give it its flush before reading
            await asyncio.sleep(0.05)

    async def _send(self, transport: Transport, events: list[dict[str, Any]]) -> None:
        self._frame += 1
        try:
            await transport.send(self._frame, events)
        except ForwardRejected as exc:
            self.rejected += len(events)
            log.error("central refused %d events (skipped): %s", len(events), exc)
            return
        self.forwarded += len(events)
        FORWARD_EVENTS.inc(len(events))

    async def _read(self, since: datetime, after: ChangeKey | None) -> tuple[list[Event], dict[int, str]]:
        async with self._sessionmaker() as session:
            repo = EventRepository(session)
            rows = list(await repo.changed_since(EventFilter(), since, after, FRAME))
            cameras = {r.camera_id for r in rows if r.camera_id is not None}
            names = await CameraRepository(session).names(cameras)
        return rows, names

    async def _update_queued(self) -> None:
        """Changes not acknowledged yet (health and metrics)."""
        assert self._position is not None
        async with self._sessionmaker() as session:
            self.queued = await EventRepository(session).count_changed_since(self._position[0])
        FORWARD_QUEUED.set(self.queued)

    async def _payload(self, row: Event, names: dict[int, str], *, with_snapshot: bool) -> dict[str, Any]:
        """The row as the central side stores it; with media="snapshots", the JPEG too (base64), the
        first time this connection sends the event."""
        link = f"{self._public_url}/api/events/{row.id}"
        payload = {
            "id": row.id,
            "camera_id": row.camera_id,
            "camera": names.get(row.camera_id) if row.camera_id is not None else None,
            "type": row.type,
            "severity": row.severity,
            "score": row.score,
            "started_at": row.started_at.isoformat(),
            "ended_at": row.ended_at.isoformat() if row.ended_at else None,
            "description": row.description,
            "data": row.data or {},
            "snapshot_url": f"{link}/snapshot.jpg" if row.snapshot_path else None,
            "clip_url": f"{link}/clip.mp4" if row.clip_path else None,
        }
        if self._media == "snapshots" and with_snapshot and row.snapshot_path:
            jpeg = await load_snapshot(self._data_dir, row.snapshot_path)
            if jpeg and len(jpeg) <= MAX_SNAPSHOT_BYTES:
                payload["snapshot_jpeg"] = base64.b64encode(jpeg).decode()
        return payload

    # -- position (durable) --

    def _load_position(self) -> ChangeKey | None:
        try:
            raw = json.loads(self._position_file.read_text())
            at, started = datetime.fromisoformat(raw["updated_at"]), datetime.fromisoformat(raw["started_at"])
            return (at, started, str(raw["id"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            log.error("%s is unreadable: forwarding from now on", self._position_file)
            return None

    def _save_position(self, key: ChangeKey) -> None:
        self._position = key
        at, started, row_id = key
        body = json.dumps({"updated_at": at.isoformat(), "started_at": started.isoformat(), "id": row_id})
        tmp = self._position_file.with_suffix(".tmp")
        self._position_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(body)
        os.replace(tmp, self._position_file)  # a kill -9 leaves the old or the new position, never half

    # -- state --

    @property
    def connected(self) -> bool:
        return self.link.connected

    def stats(self) -> dict[str, Any]:
        behind = None
        if self._position is not None:
            behind = round(max(0.0, time.time() - self._position[0].timestamp()), 1)
        return {
            "url": mask_url(self._url),
            "name": self.name,
            "transport": self._transport_kind,
            "connected": self.link.connected,
            "forwarded": self.forwarded,
            "queued": self.queued,
            "rejected": self.rejected,
            "reconnects": self.link.reconnects,
            "position_age_s": behind,
            "last_error": self.link.last_error,
        }


def _chunks(payloads: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """Consecutive frames of at most `max_bytes` of JSON each (one oversized event goes alone)."""
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for payload in payloads:
        n = len(json.dumps(payload, default=str))
        if chunks[-1] and size + n > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(payload)
        size += n
    return [c for c in chunks if c]
