"""Pydantic bases and edge checks shared by every API schema.

Input is checked where it enters: a database id past int64, a NaN or a NUL character would otherwise
reach the driver and come back as a 500 (SQLite OverflowError, PostgreSQL's refusal of NUL bytes).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

T = TypeVar("T")

# Id columns are SQLAlchemy `Integer`: 64-bit on SQLite but 32-bit on PostgreSQL, so the portable range
# stops at 2^31-1. A larger id can match no row, and the driver would overflow (a 500) rather than say so.
DB_ID_MAX = 2**31 - 1

DbId = Annotated[int, Field(ge=1, le=DB_ID_MAX, description="A database id (1 to 2^31-1).")]
"""Path, query and body ids: out of range is a 422 naming the field, never a driver overflow."""


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


def stripped_name(value: str | None) -> str | None:
    """Field validator body for names: surrounding spaces go, an empty name or a NUL is an error."""
    if value is None:
        return None
    value = reject_nul(value.strip(), "name")
    if not value:
        raise ValueError("name must not be empty")
    return value


def check_json(value: Any, path: str = "") -> None:
    """Free JSON from a client: NaN/Infinity (Python's json accepts them, the stored JSON turns them into
    null) and NUL characters (PostgreSQL refuses them) are errors naming where they are."""
    where = path or "value"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, not {value!r}")
    if isinstance(value, str):
        reject_nul(value, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            reject_nul(str(k), f"key {k!r} of {where}")
            check_json(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_json(v, f"{path}[{i}]")


def _checked_json(value: dict[str, Any]) -> dict[str, Any]:
    check_json(value)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_checked_json)]
"""A free JSON object from a client, with finite numbers and no NUL characters."""
