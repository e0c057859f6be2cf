"""JSON responses that survive a bad stored row.

A row the API once accepted (before a limit existed, or written by an older version) may no longer
serialise: 300 levels of nesting in free JSON made pydantic refuse it, and with it the whole page (a 500
for every client). Each item is serialised on its own here; one that cannot be is left out and logged
(once per row and process), never the page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, TypeVar

from fastapi.responses import Response
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_MAX_REPORTED = 1_000  # row ids already logged (bounded: a log line per bad row, not per request)
_reported: set[str] = set()


def serialised(row: Any, schema: type[M], log: logging.Logger, what: str) -> tuple[M, bytes] | None:
    """(validated item, its JSON) or None when the row cannot be returned (logged once per row id)."""
    try:
        item = schema.model_validate(row)
        return item, item.model_dump_json().encode()
    except (ValueError, TypeError, RecursionError) as exc:  # pydantic's errors are ValueErrors
        _report(log, what, row, exc)
        return None


def servable(item: BaseModel, log: logging.Logger, what: str) -> bool:
    """Whether a validated item serialises (for lists FastAPI serialises itself); logged once if not."""
    try:
        item.model_dump_json()
    except (ValueError, TypeError, RecursionError) as exc:
        _report(log, what, item, exc)
        return False
    return True


def _report(log: logging.Logger, what: str, row: Any, exc: BaseException) -> None:
    row_id = str(getattr(row, "id", "?"))
    if f"{what}:{row_id}" not in _reported:
        if len(_reported) >= _MAX_REPORTED:
            _reported.clear()
        _reported.add(f"{what}:{row_id}")
        log.warning("%s %s cannot be returned: %s", what, row_id, str(exc)[:200])


def page_response(
    rows: Iterable[Any],
    schema: type[BaseModel],
    next_cursor: str | None,
    log: logging.Logger,
    what: str,
) -> Response:
    """`{"items": [...], "next_cursor": ...}` (CursorPage's shape) from rows, skipping unservable ones."""
    parts = [done[1] for row in rows if (done := serialised(row, schema, log, what))]
    body = b'{"items":[' + b",".join(parts) + b'],"next_cursor":' + json.dumps(next_cursor).encode() + b"}"
    return Response(body, media_type="application/json")
