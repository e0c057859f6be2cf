"""ARGUS_LOG_FORMAT=json: one JSON object per line, with secrets masked exactly as in the text lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.kit.logs import TEXT_FORMAT, JsonFormatter
from app.kit.redact import install_log_redaction
from tests.kit.test_log_redaction import KEY
from tests.support.server import argus_serve


@pytest.fixture
def streams() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    """A logger writing to a JSON handler and a text handler side by side."""
    install_log_redaction()
    log = logging.getLogger("tests.json_logs")
    as_json, as_text = io.StringIO(), io.StringIO()
    json_handler, text_handler = logging.StreamHandler(as_json), logging.StreamHandler(as_text)
    json_handler.setFormatter(JsonFormatter())
    text_handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    log.addHandler(json_handler)
    log.addHandler(text_handler)
    log.setLevel(logging.INFO)
    try:
        yield log, as_json, as_text
    finally:
        log.removeHandler(json_handler)
        log.removeHandler(text_handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_url_with_user_and_password_is_masked_as_in_text(
    streams: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    log, as_json, as_text = streams
    log.warning("cannot open %s", "rtsp://admin:hunter2@10.0.0.5/stream?token=abc", extra={"camera_id": 7})
    log.info("plain line")
    first, second = lines(as_json)
    assert first["message"] == "cannot open rtsp://admin:****@10.0.0.5/stream?token=****"
    assert first["level"] == "WARNING" and first["logger"] == "tests.json_logs" and first["camera_id"] == 7
    assert str(first["ts"]).endswith("+00:00")
    assert set(second) == {"ts", "level", "logger", "message"} and second["message"] == "plain line"
    assert str(first["message"]) in as_text.getvalue()  # the same redaction as the text format
    assert "hunter2" not in as_json.getvalue() and "abc" not in as_json.getvalue()


def test_a_camera_line_names_its_camera(streams: tuple[logging.Logger, io.StringIO, io.StringIO]) -> None:
    # per-camera lines start "camera %s" with the id first (pipelines, sources, recorders): no extra= needed
    log, as_json, _ = streams
    log.info("camera %s (%s) started: %s", 12, "gate", "rtsp://u:p4ss@10.0.0.9/s")
    log.info("camera %s is a name, not an id", "lobby")
    named, unnamed = lines(as_json)
    assert named["camera_id"] == 12 and "p4ss" not in str(named["message"])
    assert "camera_id" not in unnamed


def test_an_exception_is_one_line_with_its_traceback_masked(
    streams: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    log, as_json, _ = streams
    try:
        raise ConnectionError("no answer from http://viewer:s3cret@cam.local/x\nsecond line")
    except ConnectionError:
        log.exception("camera %d lost", 3)
    (line,) = lines(as_json)  # a multi-line traceback stays inside one JSON line
    assert line["message"] == "camera 3 lost"
    assert "ConnectionError: no answer from http://viewer:****@cam.local/x" in str(line["exc_info"])
    assert "s3cret" not in as_json.getvalue()


def test_argus_serve_writes_only_json_lines(tmp_path: Path) -> None:
    """The real command: uvicorn's own lines (start-up, access) come out as JSON too, masked."""
    log = tmp_path / "argus.log"
    env = {"ARGUS_API_KEYS": KEY, "ARGUS_LOG_LEVEL": "info", "ARGUS_LOG_FORMAT": "json"}
    with argus_serve(tmp_path / "data", log, **env) as (proc, base):
        headers = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{base}/api/cameras?token={KEY}", headers=headers).status_code == 200
        proc.terminate()
        proc.wait(30)
    out = log.read_text()
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert {"uvicorn.error", "uvicorn.access"} <= {r["logger"] for r in records}, out[-3000:]
    assert any("/api/cameras?token=****" in str(r["message"]) for r in records), out[-3000:]
    assert KEY not in out
