"""Trace records: JSON lines under DATA_DIR/traces when ARGUS_TRACE_LEVEL is not `off`.

Levels add detail: `minimal` writes drops (`frame_drop`); `normal` adds per-analyzer `timing`;
`verbose` adds `sync_delay` (how long an analyzer waited for its dependencies). When off, every call
returns after one attribute test, so the frame path pays nothing.

Records (one JSON object per line, `ts` epoch seconds):
  {"type": "timing", "component": "analyzer.vad", "frame_id": "3:120", "ms": 4.2, "queue_depth": 0}
  {"type": "frame_drop", "ids": ["3:121"], "reason": "timeout", "component": "analyzer.detector"}
  {"type": "sync_delay", "frame_id": "3:120", "delay_ms": 5.1, "waiting_for": ["detector"]}

The slowest components, p95 and max over a trace file (README):
  jq -s 'map(select(.type=="timing")) | group_by(.component) | map({component: .[0].component,
    n: length, p95: (map(.ms) | sort | .[(length * 0.95 | floor)]), max: (map(.ms) | max)})
    | sort_by(-.p95)' data/traces/trace-*.jsonl
Drops by reason:  jq -s 'map(select(.type=="frame_drop")) | group_by(.reason)
    | map({reason: .[0].reason, n: length})' data/traces/trace-*.jsonl
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("argus.tracing")

LEVELS = {"off": 0, "minimal": 1, "normal": 2, "verbose": 3}
FLUSH_EVERY_S = 1.0


class Tracer:
    def __init__(self, level: str = "off", directory: Path | None = None) -> None:
        if level not in LEVELS:
            raise ValueError(f"trace level must be one of {', '.join(LEVELS)}")
        self.level = LEVELS[level]
        self.directory = directory
        self._file: IO[str] | None = None
        self._lock = threading.Lock()  # records may come from executor threads
        self._flushed_at = 0.0
        self.path: Path | None = None
        if self.level and directory is None:
            raise ValueError("a trace directory is needed when tracing is on")

    @classmethod
    def from_settings(cls, settings: Any) -> Tracer:
        return cls(settings.trace_level, Path(settings.data_dir) / "traces")

    @property
    def enabled(self) -> bool:
        return self.level > 0

    def timing(self, component: str, frame_id: str | None, ms: float, queue_depth: int | None = None) -> None:
        if self.level >= 2:
            record = {"type": "timing", "component": component, "frame_id": frame_id}
            self._write(record | {"ms": round(ms, 3), "queue_depth": queue_depth})

    def frame_drop(self, ids: Sequence[str], reason: str, component: str | None = None) -> None:
        if self.level >= 1:
            self._write({"type": "frame_drop", "ids": list(ids), "reason": reason, "component": component})

    def sync_delay(self, frame_id: str, delay_ms: float, waiting_for: Sequence[str]) -> None:
        if self.level >= 3:
            record = {"type": "sync_delay", "frame_id": frame_id, "delay_ms": round(delay_ms, 3)}
            self._write(record | {"waiting_for": list(waiting_for)})

    def _write(self, record: dict[str, Any]) -> None:
        record["ts"] = round(time.time(), 6)
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is None:
                self._open()
            assert self._file is not None
            # Buffered: the write is a memory copy; the disk sees it once a second or at close.
            self._file.write(line)
            now = time.monotonic()
            if now - self._flushed_at >= FLUSH_EVERY_S:
                self._file.flush()
                self._flushed_at = now

    def _open(self) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"trace-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        self._file = self.path.open("a", encoding="utf-8")
        self._flushed_at = time.monotonic()
        log.info("writing trace records to %s", self.path)

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


NULL_TRACER = Tracer("off")
