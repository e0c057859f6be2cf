"""Pydantic bases and edge checks shared by every API schema.

Input is checked where it enters: a database id past int64, a NaN or a NUL character would otherwise
reach the driver and come back as a 500 (SQLite OverflowError, PostgreSQL's refusal of NUL bytes).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

T = TypeVar("T")

# Id columns are SQLAlchemy `Integer`: 64-bit on SQLite but 32-bit on PostgreSQL, so the portable range
# stops at 2^31-1. A larger id can match no row, and the driver would overflow (a 500) rather than say so.
DB_ID_MAX = 2**31 - 1

DbId = Annotated[int, Field(ge=1, le=DB_ID_MAX, description="A database id (1 to 2^31-1).")]
"""Path, query and body ids: out of range is a 422 naming the field, never a driver overflow."""

# JSON bodies are typed: lax coercion would hide client bugs (`enabled: 0` read as false, `score: false`
# as 0.0, `camera_id: true` as camera 1): body models are strict (a float still takes an int), and ids
# and date-times use these forms.
BodyId = Annotated[int, Field(strict=True, ge=1, le=DB_ID_MAX, description="A database id (1 to 2^31-1).")]
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_only(value: Any) -> Any:
    """Pydantic reads a number (or a numeric string: every query value is one) as Unix seconds, so
    `since=0.5` meant 1970; a date-time must be written as one."""
    if isinstance(value, datetime) or (isinstance(value, str) and not _NUMBER.fullmatch(value)):
        return value
    raise ValueError("must be an ISO 8601 date-time, e.g. 2026-11-23T17:00:00Z")


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
"""A date-time given as ISO 8601 text only (not Unix seconds, not a bool)."""


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CursorPage(Schema, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def reject_nul(value: str, what: str = "value") -> str:
    """Field validator body: NUL is valid in Python and SQLite strings but PostgreSQL refuses it (a 500)."""
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def stripped_name(value: str | None) -> str | None:
    """Field validator body for names: surrounding spaces go; an empty name, a NUL or any other control
    character (a line break in a name forges lines wherever the name is logged or shown) is an error."""
    if value is None:
        return None
    value = reject_nul(value.strip(), "name")
    if not value:
        raise ValueError("name must not be empty")
    if _CONTROL.search(value):
        raise ValueError("name must not contain control characters (line breaks, tabs)")
    return value


# Free JSON from clients is stored and served back: it must stay small and shallow enough to be
# serialised again (pydantic stops at a few hundred levels; a 637-byte, 300-deep `data` once made
# every event listing a 500).
MAX_JSON_DEPTH = 32
MAX_JSON_ITEMS = 1_000  # object keys and array items, all levels together
MAX_JSON_BYTES = 16_384
_MAX_WHERE = 80  # error messages name the spot, shortened


def check_json(
    value: Any, path: str = "", *, max_depth: int = MAX_JSON_DEPTH, max_items: int = MAX_JSON_ITEMS
) -> None:
    """Free JSON from a client: NaN/Infinity (Python's json accepts them, the stored JSON turns them into
    null), NUL characters (PostgreSQL refuses them), more than `max_depth` levels or `max_items` keys and
    items are errors naming where they are. Iterative, so no input can exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    items = 0
    while stack:
        value, path, depth = stack.pop()
        where = _short(path) or "value"
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, not {value!r}")
        if isinstance(value, str):
            reject_nul(value, where)
            continue
        if not isinstance(value, (dict, list, tuple)):
            continue
        if depth >= max_depth:
            raise ValueError(f"{where} is nested deeper than {max_depth} levels")
        items += len(value)
        if items > max_items:
            raise ValueError(f"more than {max_items} keys and items in all (at {where})")
        if isinstance(value, dict):
            for k, v in value.items():
                reject_nul(str(k), f"key {_short(str(k))!r} of {where}")
                stack.append((v, f"{path}.{k}" if path else str(k), depth + 1))
        else:
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))


def _short(path: str) -> str:
    return path if len(path) <= _MAX_WHERE else f"...{path[-_MAX_WHERE:]}"


def json_size(value: Any) -> int:
    """Bytes of compact JSON (call after check_json: it bounds the depth json.dumps recurses to)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def json_limits(max_bytes: int = MAX_JSON_BYTES, max_items: int = MAX_JSON_ITEMS) -> AfterValidator:
    """Validator for a free JSON value: checked as check_json does, and at most `max_bytes` of JSON.
    Use as `Annotated[dict[str, Any], json_limits(4096)]`."""

    def checked(value: Any) -> Any:
        check_json(value, max_items=max_items)
        if json_size(value) > max_bytes:
            raise ValueError(f"larger than {max_bytes} bytes of JSON")
        return value

    return AfterValidator(checked)


JsonObject = Annotated[dict[str, Any], json_limits()]
"""A free JSON object from a client: finite numbers, no NUL characters, at most 32 levels, 1,000 keys and
items and 16 KB of JSON."""
