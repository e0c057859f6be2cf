"""Credentials never reach logs or responses: mask the password in any URL-looking string."""

from __future__ import annotations

import re
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
