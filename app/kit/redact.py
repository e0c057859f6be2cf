"""Credentials never reach logs or responses: URL passwords, secret query values, Bearer tokens."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_CRED_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@")
# `?token=` / `&api_key=` ... in a query string: uvicorn logs every request path with its query, and the
# dashboard's WebSocket used to carry the API key there. Only after `?` or `&`, so prose is left alone.
SECRET_PARAMS = ("token", "access_token", "api_key", "apikey", "key", "password", "secret")
_NAMES = "|".join(SECRET_PARAMS)
_QUERY_RE = re.compile(rf"(?P<name>[?&](?:{_NAMES})=)[^&#\s\"']+", re.IGNORECASE)
_BEARER_RE = re.compile(r"(?P<name>\bbearer\s+)[^\s\"',;]+", re.IGNORECASE)
# Cheap test before the full masking, run on every log record.
_HINT_RE = re.compile(rf"@|[?&](?:{_NAMES})=|bearer\s", re.IGNORECASE)


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
    """Mask every `scheme://user:password@`, secret query value (`?token=****`) and `Bearer ****` inside
    free text (error messages from FFmpeg, logs)."""
    text = _CRED_RE.sub(lambda m: f"{m['scheme']}{m['user']}:****@", text)
    text = _QUERY_RE.sub(lambda m: f"{m['name']}****", text)
    return _BEARER_RE.sub(lambda m: f"{m['name']}****", text)


def _may_hold_secret(text: str) -> bool:
    return _HINT_RE.search(text) is not None


def install_log_redaction() -> None:
    """Mask credentials in every log record, whoever logs it (FFmpeg errors, SQL parameters, tracebacks,
    uvicorn's request lines with `?token=<key>`).

    Done in the record factory, so it holds for every handler, including ones added later.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_argus_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _may_hold_secret(str(record.msg)) or (record.args and _may_hold_secret(str(record.args))):
            record.msg, record.args = mask_text(record.getMessage()), None
        if record.exc_info and record.exc_info[1] is not None and _may_hold_secret(str(record.exc_info[1])):
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    factory._argus_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
