"""What a 422 may say back about the input it refused: masked, short, never a secret.

FastAPI's validation errors carry the offending `input`, which can be the whole body (a camera without
`name` echoed its `rtsp://admin:password@...` URL; a 20 MB value came back whole). Here every string is
masked like a URL in a log line, long strings and deep or wide containers are cut, and fields whose name
says secret lose their input entirely.
"""

from __future__ import annotations

import re
from typing import Any

from app.kit.redact import mask_text, mask_url

MAX_STRING = 200  # characters of one string shown back
MAX_ITEMS = 20  # keys or items of one container shown back
MAX_DEPTH = 3  # containers shown inside containers
MAX_TOTAL = 2_000  # characters of strings in one error's input, all together
CUT = "…"
SECRET_FIELD = re.compile(r"secret|passw|pwd|token|api_?key|auth|signature|credential|^key$", re.I)
HIDDEN = "****"


def is_secret_field(name: object) -> bool:
    return isinstance(name, str) and SECRET_FIELD.search(name) is not None


def safe_errors(errors: list[Any]) -> list[Any]:
    """Pydantic/FastAPI error dicts with `input` masked and cut (dropped for a secret field), and `msg`
    and `ctx` masked."""
    return [_safe_error(e) if isinstance(e, dict) else e for e in errors]


def _safe_error(error: dict[str, Any]) -> dict[str, Any]:
    error = dict(error)
    loc = error.get("loc") or ()
    if any(is_secret_field(part) for part in loc):
        error.pop("input", None)
        error.pop("ctx", None)  # pattern/length context can say as much as the value
    elif "input" in error:
        error["input"] = shown(error["input"])
    if isinstance(error.get("msg"), str):
        error["msg"] = _text(error["msg"], 500)
    if isinstance(error.get("ctx"), dict):
        error["ctx"] = {
            k: _text(str(v), MAX_STRING) if isinstance(v, (str, Exception)) else v
            for k, v in error["ctx"].items()
        }
    return error


def shown_message(text: str, limit: int = 1_000) -> str:
    """An error message fit to send: masked, then cut (messages quote ids, names and URLs they got)."""
    return _text(text, limit)


def shown(value: Any) -> Any:
    """A refused input as it may be shown back (see the module doc)."""
    return _Shower().show(value, 0)


class _Shower:
    def __init__(self) -> None:
        self.budget = MAX_TOTAL

    def show(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            text = _text(value, min(MAX_STRING, max(self.budget, 0)))
            self.budget -= len(text)
            return text
        if isinstance(value, bytes):
            return self.show(value.decode("utf-8", "replace"), depth)
        if isinstance(value, dict):
            if depth >= MAX_DEPTH or self.budget <= 0:
                return CUT
            out: dict[str, Any] = {}
            for i, (k, v) in enumerate(value.items()):
                if i >= MAX_ITEMS:
                    out[CUT] = f"{len(value) - MAX_ITEMS} more"
                    break
                key = _text(str(k), 64)
                out[key] = HIDDEN if is_secret_field(str(k)) and v is not None else self.show(v, depth + 1)
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            if depth >= MAX_DEPTH or self.budget <= 0:
                return CUT
            items = list(value)
            shown_items = [self.show(v, depth + 1) for v in items[:MAX_ITEMS]]
            return shown_items + ([f"{CUT} {len(items) - MAX_ITEMS} more"] if len(items) > MAX_ITEMS else [])
        return value  # numbers, booleans, None (json_safe turns NaN into text afterwards)


def _text(value: str | Exception, limit: int) -> str:
    """Masked first (a cut could split a `user:password@` so the masking no longer sees it), then cut."""
    text = str(value)
    if "://" in text and len(text) <= 8_192:
        text = mask_url(text)
    text = mask_text(text)
    return text if len(text) <= limit else text[:limit] + CUT
