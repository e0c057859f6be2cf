"""The event stream behind `GET /api/events/stream` (Server-Sent Events): live events from the bus, and
a resume from the database after a reconnect.

Positions: each message's SSE id is `<unix ms>-<event id>`: the time the event went on the bus (live) or
its row's `updated_at` (replayed). Every later change of any event is published after that time and
stored at or after its publication, so a consumer that reconnects with `Last-Event-ID` gets every event
changed since then from the database (as it is now), at least once: `RESUME_SLACK_S` more covers
ingested events, stored a few milliseconds before they are published.

A client whose queue fills (it reads too slowly) is cut off with an `overflow` message rather than
slowing anyone: it reconnects with its last id and misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.repository import ChangeKey, EventFilter, EventRepository, change_key
from app.events.types import NewEvent, Phase
from app.metrics import EVENT_STREAM_CLIENTS, EVENT_STREAM_CUT
from app.models import Event

RESUME_SLACK_S = 2.0
PHASE_NAMES = {Phase.open: "new", Phase.update: "update", Phase.close: "end"}


class InvalidPosition(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Position:
    at: datetime
    event_id: str

    def __str__(self) -> str:
        return f"{round(self.at.timestamp() * 1000)}-{self.event_id}"

    @classmethod
    def parse(cls, text: str) -> Position:
        millis, sep, event_id = text.strip().partition("-")
        if not sep or not millis.isdigit() or not event_id or len(text) > 100:
            raise InvalidPosition("not an id this stream sent (<unix ms>-<event id>)")
        try:
            at = datetime.fromtimestamp(int(millis) / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidPosition("its time is out of range") from None
        return cls(at, event_id)

    @property
    def resume_from(self) -> datetime:
        return self.at - timedelta(seconds=RESUME_SLACK_S)


def matches(flt: EventFilter, event: NewEvent) -> bool:
    """The stream's filters on a live event, as `/api/events` applies them to rows (time ranges aside)."""
    return (
        (flt.camera_id is None or event.camera_id == flt.camera_id)
        and (not flt.type or event.type == flt.type)
        and (flt.severity is None or event.severity == flt.severity)
        and (flt.min_severity is None or event.severity.at_least(flt.min_severity))
    )


def live_message(event: NewEvent) -> tuple[str, str, dict[str, Any]]:
    """(SSE event name, id, data) for an event from the bus."""
    body = event.to_json()
    body.pop("phase", None)
    snapshot = body.pop("snapshot_path", None)
    body["snapshot_url"] = f"/api/events/{event.id}/snapshot.jpg" if snapshot else None
    at = datetime.fromtimestamp(event.produced_at, UTC) if event.produced_at else datetime.now(UTC)
    return PHASE_NAMES[event.phase], str(Position(at, event.id)), body


def row_message(row: Event) -> tuple[str, str, dict[str, Any]]:
    """(SSE event name, id, data) for a stored event being replayed: its phase as the row is now."""
    name = "end" if row.ended_at is not None else "new" if row.created_at == row.updated_at else "update"
    body = {
        "id": row.id,
        "camera_id": row.camera_id,
        "type": row.type,
        "severity": row.severity,
        "score": row.score,
        "started_at": row.started_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "description": row.description,
        "source": row.source,
        "data": row.data or {},
        "snapshot_url": f"/api/events/{row.id}/snapshot.jpg" if row.snapshot_path else None,
    }
    return name, str(Position(row.updated_at, row.id)), body


@dataclass(eq=False)
class StreamClient:
    queue: asyncio.Queue[NewEvent]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class EventStreamHub:
    """Direct bus subscriber: hands each event to every stream client's bounded queue."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._clients: set[StreamClient] = set()
        self.sent = 0
        self.cut = 0

    def publish(self, event: NewEvent) -> None:
        for client in self._clients:
            if client.overflowed.is_set():
                continue
            try:
                client.queue.put_nowait(event)
                self.sent += 1
            except asyncio.QueueFull:
                client.overflowed.set()
                self.cut += 1
                EVENT_STREAM_CUT.inc()

    @contextlib.contextmanager
    def client(self) -> Iterator[StreamClient]:
        client = StreamClient(asyncio.Queue(self._queue_size))
        self._clients.add(client)
        EVENT_STREAM_CLIENTS.set(len(self._clients))
        try:
            yield client
        finally:
            self._clients.discard(client)
            EVENT_STREAM_CLIENTS.set(len(self._clients))

    def stats(self) -> dict[str, int]:
        return {"clients": len(self._clients), "sent": self.sent, "cut_off": self.cut}


REPLAY_PAGE = 500


async def replay(
    sessionmaker: async_sessionmaker[AsyncSession], flt: EventFilter, resume: Position
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """Every event stored or changed since `resume` (less the slack), oldest change first, page by page
    (a short session per page: no connection is held while the consumer reads)."""
    after: ChangeKey | None = None
    while True:
        async with sessionmaker() as session:
            rows = await EventRepository(session).changed_since(flt, resume.resume_from, after, REPLAY_PAGE)
            messages = [row_message(r) for r in rows]
            if rows:
                after = change_key(rows[-1])
        for message in messages:
            yield message
        if len(rows) < REPLAY_PAGE:
            return
