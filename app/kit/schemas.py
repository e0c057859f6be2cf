"""Pydantic bases shared by every API schema."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CursorPage(Schema, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def stripped_name(value: str | None) -> str | None:
    """Field validator body for names: surrounding spaces go, an empty name is an error."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("name must not be empty")
    return value
