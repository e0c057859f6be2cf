"""Logging set-up: text lines (default) or one JSON object per line (ARGUS_LOG_FORMAT=json).

Secrets are masked before any formatter sees a record (app/kit/redact.py, in the record factory), so both
formats get the same redacted message; the JSON one masks the traceback text it writes as well.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from app.kit.redact import install_log_redaction, mask_text

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "message"} plus "camera_id" when the record carries one and
    "exc_info" / "stack_info" when it has them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        camera_id = camera_of(record)
        if camera_id is not None:
            line["camera_id"] = camera_id
        if record.exc_info:
            line["exc_info"] = mask_text(self.formatException(record.exc_info))
        elif record.exc_text:  # redaction already formatted (and masked) it
            line["exc_info"] = mask_text(record.exc_text)
        if record.stack_info:
            line["stack_info"] = mask_text(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def camera_of(record: logging.LogRecord) -> int | None:
    """`extra={"camera_id": ...}`, or the house convention every per-camera line follows: a message that
    starts "camera %s" with the id as its first argument (pipelines, sources, recorders, VAD, leases)."""
    given = getattr(record, "camera_id", None)
    if given is not None:
        return int(given)
    args, msg = record.args, record.msg
    if isinstance(args, tuple) and args and isinstance(msg, str) and msg.startswith("camera %s"):
        first = args[0]
        if isinstance(first, int) and not isinstance(first, bool):
            return first
    return None


def formatter_for(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Redaction on, and a stderr handler on the root logger unless one is there already (basicConfig)."""
    install_log_redaction()
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_for(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler])
