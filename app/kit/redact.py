"""Credentials never reach logs or responses: mask the password in any URL-looking string."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_CRED_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@")


def mask_url(url: str) -> str:
    """`rtsp://admin:secret@host/x` -> `rtsp://admin:****@host/x`; other strings pass unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:****@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def mask_text(text: str) -> str:
    """Mask every `scheme://user:password@` inside free text (error messages from FFmpeg, logs)."""
    return _CRED_RE.sub(lambda m: f"{m['scheme']}{m['user']}:****@", text)


def install_log_redaction() -> None:
    """Mask credentials in every log record, whoever logs it (FFmpeg errors, SQL parameters, tracebacks).

    Done in the record factory, so it holds for every handler, including ones added later.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_argus_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if "@" in str(record.msg) or (record.args and "@" in str(record.args)):
            record.msg, record.args = mask_text(record.getMessage()), None
        if record.exc_info and record.exc_info[1] is not None and "@" in str(record.exc_info[1]):
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    factory._argus_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
