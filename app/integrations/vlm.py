"""VLM descriptions: new events' snapshots go to an OpenAI-compatible vision model, off the frame path.

`consider(event)` is a non-blocking bus handler. An event that just opened, is at or above the minimum
severity and has a snapshot goes on a bounded queue; ONE shared worker sends each to
`POST {base}/chat/completions` (Ollama, vLLM, llama.cpp server, OpenAI) with the JPEG as a base64 data
URL and asks for `{"description": ..., "severity": ...}`. The answer is published back on the bus as an
`update` of the same event (description set, severity raised never lowered), so the logger upserts it
and the alert engine sees a rise. A full queue, a timeout or a bad answer is counted and logged; the
event itself is never held back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

from app.events.types import NewEvent, Phase
from app.kit.redact import mask_url
from app.kit.severity import Severity
from app.kit.tasks import cancel_and_wait, spawn
from app.metrics import VLM_REQUESTS

if TYPE_CHECKING:
    from app.config import Settings
    from app.events.bus import EventBus

log = logging.getLogger("argus.vlm")

MAX_DESCRIPTION = 1000  # characters kept: a model that rambles must not bloat the events table
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024
SYSTEM_PROMPT = (
    "You review still frames from security cameras. Describe what is happening in one or two short "
    "sentences, then rate how urgent it is for a human operator: low (routine), medium (worth a look), "
    "high (needs attention now) or critical (danger to people or property). Answer with JSON only: "
    '{"description": "...", "severity": "low|medium|high|critical"}'
)
_SEVERITY_WORDS = {
    "low": Severity.low, "info": Severity.low, "none": Severity.low, "minor": Severity.low,
    "medium": Severity.medium, "moderate": Severity.medium, "warning": Severity.medium,
    "high": Severity.high, "major": Severity.high, "severe": Severity.high, "serious": Severity.high,
    "critical": Severity.critical, "emergency": Severity.critical,
}  # fmt: skip
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


class VlmAnswerError(ValueError):
    pass


def parse_answer(text: str) -> tuple[str, Severity | None]:
    """The model's reply -> (description, severity or None). JSON anywhere in the text (code fences
    too) wins; otherwise the plain text is the description. An empty reply is a VlmAnswerError."""
    text = (text or "").strip()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        obj = _first_json_object(candidate)
        if obj is None:
            continue
        description = str(obj.get("description") or obj.get("summary") or "").strip()
        if description:
            return description[:MAX_DESCRIPTION], parse_severity(obj.get("severity"))
    plain = _FENCE.sub("", text).strip()
    if not plain or plain.startswith("{"):
        raise VlmAnswerError(f"no description in the answer: {text[:120]!r}")
    return plain[:MAX_DESCRIPTION], None


def parse_severity(value: object) -> Severity | None:
    if not isinstance(value, str):
        return None
    return _SEVERITY_WORDS.get(value.strip().lower())


def _first_json_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def message_text(body: Any) -> str:
    """choices[0].message.content of a chat-completions response (a string or a list of parts)."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise VlmAnswerError("the response has no choices[0].message.content") from None
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise VlmAnswerError("message content is not text")
    return content


class VlmDescriber:
    def __init__(
        self,
        bus: EventBus,
        *,
        base_url: str,
        model: str,
        data_dir: Path,
        api_key: str = "",
        timeout_s: float = 30.0,
        min_severity: Severity | str = Severity.medium,
        max_queue: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._bus = bus
        self.endpoint = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.data_dir = Path(data_dir)
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.min_severity = Severity(min_severity)
        self._queue: asyncio.Queue[NewEvent] = asyncio.Queue(max_queue)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = True
        self.outcomes: Counter[str] = Counter()
        self.last_error: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, bus: EventBus, **overrides: Any) -> VlmDescriber:
        values: dict[str, Any] = {
            "base_url": settings.vlm_base_url,
            "model": settings.vlm_model,
            "data_dir": settings.data_dir,
            "api_key": settings.vlm_api_key,
            "timeout_s": settings.vlm_timeout_s,
            "min_severity": settings.vlm_min_severity,
            "max_queue": settings.vlm_max_queue,
        }
        values.update(overrides)
        return cls(bus, **values)

    async def __aenter__(self) -> Self:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s), headers=headers, transport=self._transport
        )
        self._closed = False
        self._task = spawn(self._run(), name="argus.vlm")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed = True
        await cancel_and_wait(self._task)
        self._task = None
        if not self._queue.empty():
            log.warning("vlm: %d queued events not described (shutting down)", self._queue.qsize())
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- bus side (never blocks) --------------------------------------------------------------------

    def wants(self, event: NewEvent) -> bool:
        return (
            event.phase == Phase.open
            and event.snapshot_path is not None
            and Severity(event.severity).at_least(self.min_severity)
        )

    def consider(self, event: NewEvent) -> None:
        if self._closed or not self.wants(event):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._count("queue_full", f"queue full ({self._queue.maxsize}); event {event.id} not described")

    # -- worker -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        log.info("vlm worker started (%s, model %s)", mask_url(self.endpoint), self.model)
        try:
            while True:
                event = await self._queue.get()
                try:
                    await self._describe(event)
                except Exception as exc:  # a bug here must not kill the only worker
                    self._count("error", f"event {event.id}: {type(exc).__name__}: {exc}")
                finally:
                    self._queue.task_done()
        finally:
            log.info("vlm worker stopped")

    async def _describe(self, event: NewEvent) -> None:
        image = await asyncio.to_thread(self._read_snapshot, event.snapshot_path)
        if image is None:
            self._count("no_snapshot", f"event {event.id}: snapshot {event.snapshot_path!r} unreadable")
            return
        assert self._client is not None
        started = time.perf_counter()
        try:
            response = await asyncio.wait_for(
                self._client.post(self.endpoint, json=self._request(event, image)), self.timeout_s
            )
            response.raise_for_status()
            description, severity = parse_answer(message_text(response.json()))
        except (TimeoutError, httpx.TimeoutException):
            self._count("timeout", f"event {event.id}: no answer within {self.timeout_s:g} s")
            return
        except httpx.HTTPStatusError as exc:
            self._count("error", f"event {event.id}: HTTP {exc.response.status_code}")
            return
        except httpx.HTTPError as exc:
            self._count("error", f"event {event.id}: {type(exc).__name__}")
            return
        except (VlmAnswerError, json.JSONDecodeError) as exc:
            self._count("bad_answer", f"event {event.id}: {exc}")
            return
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        old = Severity(event.severity)
        new = Severity.worst(old, severity) if severity is not None else old
        vlm = {"model": self.model, "severity": str(severity) if severity else None, "latency_ms": latency_ms}
        self._bus.publish(
            event.evolve(
                phase=Phase.update,
                description=description,
                severity=new,
                data={**event.data, "vlm": vlm},
                produced_at=0.0,
            )
        )
        self._count("ok")
        if new != old:
            log.info("vlm raised event %s from %s to %s", event.id, old, new)

    def _request(self, event: NewEvent, jpeg: bytes) -> dict[str, Any]:
        context = {"camera_id": event.camera_id, "type": event.type, "severity": str(event.severity)}
        for key in ("label", "zones", "reason"):
            if key in event.data:
                context[key] = event.data[key]
        data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": f"Event: {json.dumps(context)}. What is happening?"},
                        {"type": "image_url", "image_url": {"url": data_url}},
                    ],
                },
            ],
            "temperature": 0.2,
            "max_tokens": 300,
            "stream": False,
        }

    def _read_snapshot(self, snapshot_path: str | None) -> bytes | None:
        """Relative paths are under DATA_DIR; absolute ones are taken as they are. Only JPEG files are
        sent, so a row pointing at some other file never ships it to the model."""
        if not snapshot_path:
            return None
        path = Path(snapshot_path)
        if not path.is_absolute():
            path = self.data_dir / path
        try:
            if path.stat().st_size > MAX_SNAPSHOT_BYTES:
                return None
            data = path.read_bytes()
        except OSError:
            return None
        return data if data[:3] == b"\xff\xd8\xff" else None

    # -- reporting ----------------------------------------------------------------------------------

    def _count(self, outcome: str, problem: str | None = None) -> None:
        self.outcomes[outcome] += 1
        VLM_REQUESTS.labels(outcome).inc()
        if problem is not None:
            self.last_error = problem
            log.warning("vlm %s: %s", outcome, problem)

    async def idle(self, timeout: float = 10.0) -> None:
        """Every queued event has been handled (tests, shutdown)."""
        await asyncio.wait_for(self._queue.join(), timeout)

    def stats(self) -> dict[str, Any]:
        return {
            "endpoint": mask_url(self.endpoint),
            "model": self.model,
            "queued": self._queue.qsize(),
            "max_queue": self._queue.maxsize,
            "outcomes": dict(self.outcomes),
            "last_error": self.last_error,
        }
