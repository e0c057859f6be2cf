"""Edge checks shared by every API schema: DbId, reject_nul, stripped_name, JsonObject."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from app.kit.schemas import DB_ID_MAX, DbId, JsonObject, check_json, reject_nul, stripped_name


def test_db_id_accepts_the_column_range_only() -> None:
    ids = TypeAdapter(DbId)
    assert ids.validate_python(1) == 1 and ids.validate_python(DB_ID_MAX) == DB_ID_MAX
    for bad in (0, -1, DB_ID_MAX + 1, 2**70):
        with pytest.raises(ValidationError):
            ids.validate_python(bad)


def test_reject_nul_names_what_it_checked() -> None:
    assert reject_nul("rtsp://h/x", "url") == "rtsp://h/x"
    with pytest.raises(ValueError, match="url must not contain NUL"):
        reject_nul("rtsp://h/\x00", "url")


def test_stripped_name() -> None:
    assert stripped_name("  gate ") == "gate"
    assert stripped_name(None) is None
    for bad in ("   ", "ga\x00te"):
        with pytest.raises(ValueError):
            stripped_name(bad)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"x": float("inf")}, "x"),
        ({"a": {"b": [1.0, float("nan")]}}, "a.b[1]"),
        ({"a": ["ok", "n\x00"]}, "a[1]"),
        ({"k\x00": 1}, "key"),
    ],
)
def test_check_json_names_the_bad_spot(value: object, where: str) -> None:
    with pytest.raises(ValueError, match=r"(?s)" + where.replace("[", r"\[").replace("]", r"\]")):
        check_json(value)


def test_json_object_keeps_ordinary_json() -> None:
    value = {"door": "bay 2", "n": [1, 2.5, None, True], "nested": {"ok": -0.0}}
    assert TypeAdapter(JsonObject).validate_python(value) == value
    with pytest.raises(ValidationError):
        TypeAdapter(JsonObject).validate_json('{"x": NaN}')
