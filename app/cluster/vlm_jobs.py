"""VLM descriptions in worker processes, fed by a Redis stream (cluster mode).

Server side, `VlmJobQueue.consider(event)` is the bus handler in place of the in-process describer:
the same events qualify (`VlmDescriber.wants`); their snapshot is put in Redis under its own key (a
worker may run on another machine, without the node's disk) and a job is XADDed to the `vlm` stream.
The server never waits on a worker: a bounded local queue, one task, and a full queue is counted.

Worker side (`argus worker vlm`), `VlmWorker` reads the stream as one consumer of the group: each job
is described by the model, stored on the event row (description, severity raised never lowered,
`data.vlm`), announced on the events channel (every node's live view and event stream) and only then
XACKed. A job whose worker died stays pending; any worker XAUTOCLAIMs jobs idle longer than
`reclaim_idle_s` and does them. The row is locked and checked for `data.vlm` before it is written, so
a job done twice (its worker died between storing and acknowledging) stores one description.
An answer that can never succeed (a bad answer, an HTTP 4xx, no snapshot) is acknowledged and
counted; a timeout or an unreachable model leaves the job pending, to be retried after the idle time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from typing import Any, Self

import httpx
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cluster.fanout import encode_event
from app.cluster.keys import Keys
from app.events.types import NewEvent, Phase, Severity
from app.integrations.vlm import VlmAnswerError, VlmDescriber, message_text, parse_answer
from app.kit.tasks import cancel_and_wait, spawn
from app.models import Event, utcnow

log = logging.getLogger("argus.cluster.vlm")
GROUP = "argus-vlm"
STREAM_MAXLEN = 10_000  # jobs kept in the stream at most (approximate trim)
IMAGE_TTL_S = 3600  # a snapshot waits this long for a worker


class VlmJobQueue:
    """The server's half: qualifying events become stream jobs; never blocks the bus."""

    def __init__(
        self, redis: Redis, describer: VlmDescriber, *, keys: Keys | None = None, max_queue: int = 256
    ) -> None:
        self._redis = redis
        self._describer = describer  # its selection rule and snapshot reader, not its HTTP client
        self.keys = keys or Keys()
        self._queue: asyncio.Queue[NewEvent] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self.outcomes: Counter[str] = Counter()

    async def __aenter__(self) -> Self:
        self._task = spawn(self._run(), name="argus.cluster.vlm.queue")
        return self

    async def __aexit__(self, *_: object) -> None:
        await cancel_and_wait(self._task)

    def consider(self, event: NewEvent) -> None:
        if not self._describer.wants(event):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.outcomes["queue_full"] += 1

    async def idle(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._queue.join(), timeout)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.submit(event)
            except Exception as exc:  # Redis away: this event goes undescribed, as with a full queue
                self.outcomes["error"] += 1
                log.warning("vlm job for event %s not queued: %s: %s", event.id, type(exc).__name__, exc)
            finally:
                self._queue.task_done()

    async def submit(self, event: NewEvent) -> str | None:
        """XADD one job (its snapshot stored first); the stream entry id, or None without a snapshot."""
        image = await asyncio.to_thread(self._describer._read_snapshot, event.snapshot_path)
        if image is None:
            self.outcomes["no_snapshot"] += 1
            return None
        image_key = self.keys.vlm_image(event.id)
        await self._redis.set(image_key, image, ex=IMAGE_TTL_S)
        job: dict[FieldT, EncodableT] = {
            "event": json.dumps(event.to_json(), default=str),
            "image_key": image_key,
        }
        entry = await self._redis.xadd(self.keys.vlm_stream, job, maxlen=STREAM_MAXLEN, approximate=True)
        self.outcomes["queued"] += 1
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def stats(self) -> dict[str, Any]:
        return {"queued": self._queue.qsize(), "outcomes": dict(self.outcomes)}


class Retry(Exception):
    """The job may succeed later (model unreachable or slow): left pending, reclaimed after the idle time."""


class VlmWorker:
    """One consumer of the group; `run()` until cancelled."""

    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        describer: VlmDescriber,
        *,
        name: str,
        keys: Keys | None = None,
        reclaim_idle_s: float = 60.0,
        block_s: float = 1.0,
    ) -> None:
        self._redis = redis
        self._sessionmaker = sessionmaker
        self._describer = describer  # its endpoint, model and request format
        self.name = name
        self.keys = keys or Keys()
        self._reclaim_ms = max(1, round(reclaim_idle_s * 1000))
        self._block_ms = max(1, round(block_s * 1000))
        self._client: httpx.AsyncClient | None = None
        self.outcomes: Counter[str] = Counter()

    async def __aenter__(self) -> Self:
        api_key = self._describer._api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(self._describer.timeout_s), headers=headers)
        with contextlib.suppress(ResponseError):  # BUSYGROUP: another worker made it
            await self._redis.xgroup_create(self.keys.vlm_stream, GROUP, id="0", mkstream=True)
        log.info("vlm worker %s started (stream %s, group %s)", self.name, self.keys.vlm_stream, GROUP)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._client is not None:
            await self._client.aclose()
        log.info("vlm worker %s stopped: %s", self.name, dict(self.outcomes))

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or the database away: try again shortly
                log.warning("vlm worker %s: %s: %s", self.name, type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    async def step(self) -> int:
        """Reclaim jobs idle too long, then read new ones (waiting up to `block_s`); handled count."""
        stream = self.keys.vlm_stream
        reclaimed = await self._redis.xautoclaim(
            stream, GROUP, self.name, min_idle_time=self._reclaim_ms, start_id="0-0", count=10
        )
        entries = list(reclaimed[1])
        if entries:
            log.info("vlm worker %s reclaimed %d job(s) of a stopped worker", self.name, len(entries))
        else:
            reply = await self._redis.xreadgroup(
                GROUP, self.name, {stream: ">"}, count=1, block=self._block_ms
            )
            assert isinstance(reply, list)  # RESP2 (this client's protocol): [[stream, [(id, fields)]]]
            for _, got in reply:
                entries.extend(got)
        for entry_id, fields in entries:
            if fields:  # None: trimmed from the stream meanwhile
                await self.handle(entry_id, fields)
        return len(entries)

    async def handle(self, entry_id: bytes | str, fields: dict[bytes, bytes]) -> None:
        event = NewEvent.from_json(json.loads(fields[b"event"]))
        image_key = fields[b"image_key"].decode()
        try:
            outcome = await self._describe(event, image_key)
        except Retry as exc:
            self.outcomes["retry"] += 1
            log.warning("vlm job %s (event %s) left for a retry: %s", entry_id, event.id, exc)
            return
        self.outcomes[outcome] += 1
        await self._redis.xack(self.keys.vlm_stream, GROUP, entry_id)
        await self._redis.delete(image_key)

    async def _describe(self, event: NewEvent, image_key: str) -> str:
        if await self._described(event.id):
            return "already_described"
        image = await self._redis.get(image_key)
        if not isinstance(image, bytes):  # None: expired (str never: this client does not decode)
            return "no_snapshot"
        assert self._client is not None
        started = time.perf_counter()
        try:
            response = await self._client.post(
                self._describer.endpoint, json=self._describer._request(event, image)
            )
            response.raise_for_status()
            description, severity = parse_answer(message_text(response.json()))
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code >= 500 or exc.response.status_code == 429:
                raise Retry(f"HTTP {exc.response.status_code}") from None
            return "error"
        except httpx.HTTPError as exc:  # timeouts, refused connections
            raise Retry(type(exc).__name__) from None
        except (VlmAnswerError, json.JSONDecodeError) as exc:
            log.warning("vlm bad answer for event %s: %s", event.id, exc)
            return "bad_answer"
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        vlm = {
            "model": self._describer.model,
            "severity": str(severity) if severity else None,
            "latency_ms": latency_ms,
            "worker": self.name,
        }
        stored = await self._store(event, description, severity, vlm)
        if stored is None:
            return "already_described"
        await self._redis.publish(self.keys.events, encode_event(f"worker:{self.name}", stored))
        return "ok"

    async def _described(self, event_id: str) -> bool:
        async with self._sessionmaker() as session:
            data = (await session.execute(select(Event.data).where(Event.id == event_id))).scalar()
        return isinstance(data, dict) and "vlm" in data

    async def _store(
        self, event: NewEvent, description: str, severity: Severity | None, vlm: dict[str, Any]
    ) -> NewEvent | None:
        """Write the description once (the row locked, `data.vlm` checked); the stored version, or None
        when another worker got there first. A row the logger has not flushed yet is inserted."""
        async with self._sessionmaker.begin() as session:
            row = (
                await session.execute(select(Event).where(Event.id == event.id).with_for_update())
            ).scalar_one_or_none()
            if row is None:
                row = Event(**{k: v for k, v in event.to_row().items() if k != "fence"})
                session.add(row)
            elif "vlm" in (row.data or {}):
                return None
            old = Severity(row.severity)
            new = max(old, severity, key=lambda s: s.rank) if severity is not None else old
            row.description = description
            row.severity = str(new)
            row.data = {**(row.data or {}), "vlm": vlm}
            row.updated_at = utcnow()
        return event.evolve(
            phase=Phase.update,
            description=description,
            severity=new,
            data={**event.data, "vlm": vlm},
            produced_at=time.time(),
        )

    async def pending(self) -> int:
        """Jobs delivered to some worker and not yet acknowledged (tests, health)."""
        info = await self._redis.xpending(self.keys.vlm_stream, GROUP)
        return int(info["pending"])


async def run_worker(settings: Any, *, name: str, reclaim_idle_s: float, prefix: str) -> None:
    """`argus worker vlm`: one worker process until SIGINT/SIGTERM."""
    from app.cluster.keys import connect
    from app.kit.db import create_engine, create_sessionmaker

    engine = create_engine(settings.database_url)
    redis = connect(settings.redis_url)
    describer = VlmDescriber.from_settings(settings, bus=None)  # type: ignore[arg-type]
    try:
        worker = VlmWorker(
            redis,
            create_sessionmaker(engine),
            describer,
            name=name,
            keys=Keys(prefix),
            reclaim_idle_s=reclaim_idle_s,
        )
        async with worker:
            await worker.run()
    finally:
        await redis.aclose()
        await engine.dispose()
