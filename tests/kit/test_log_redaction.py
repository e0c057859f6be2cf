"""The redacting record factory keeps each record's argument tuple intact (uvicorn's AccessFormatter
unpacks it): an access line with `?token=` is masked, never a `--- Logging error ---` (issue 9, item 10)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from app.kit.redact import install_log_redaction
from tests.support.server import argus_serve

KEY = "argus_Sekr1t-key-value"
ACCESS_FORMAT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'


def access_record(path: str) -> logging.LogRecord:
    """A record made the way uvicorn makes its access lines (h11_impl / httptools_impl)."""
    install_log_redaction()
    return logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )


def test_uvicorn_access_formatter_gets_its_tuple_masked() -> None:
    record = access_record(f"/ws/live?token={KEY}&x=1")
    assert isinstance(record.args, tuple) and len(record.args) == 5
    line = AccessFormatter(ACCESS_FORMAT, use_colors=False).format(record)
    assert line.endswith('127.0.0.1:5000 - "GET /ws/live?token=****&x=1 HTTP/1.1" 200 OK')
    assert KEY not in line


def test_no_logging_error_through_a_real_handler(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter(ACCESS_FORMAT, use_colors=False))
    handler.handle(access_record(f"/api/events?token={KEY}"))
    assert "Logging error" not in capsys.readouterr().err
    assert "/api/events?token=**** HTTP/1.1" in stream.getvalue() and KEY not in stream.getvalue()


def test_plain_args_are_kept_and_split_secrets_still_masked(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    log = logging.getLogger("tests.redact.args")
    with caplog.at_level(logging.INFO, logger="tests.redact.args"):
        log.info("%d frames from %s", 3, "rtsp://u:pw@h/x")
        log.info("GET /x?token=%s", KEY)  # the secret's name in the format, its value in the args
        log.info("%(url)s done", {"url": f"http://h/?api_key={KEY}"})
    first, split, mapping = caplog.records
    assert first.args == (3, "rtsp://u:****@h/x") and first.getMessage() == "3 frames from rtsp://u:****@h/x"
    assert split.getMessage() == "GET /x?token=****"
    assert mapping.getMessage() == "http://h/?api_key=**** done"
    assert KEY not in caplog.text


def test_argus_serve_access_log_with_a_token(tmp_path: Path) -> None:
    """The real command with uvicorn's default logging config: access lines masked, no logging errors."""
    log = tmp_path / "argus.log"
    with argus_serve(tmp_path / "data", log, ARGUS_API_KEYS=KEY, ARGUS_LOG_LEVEL="info") as (proc, base):
        headers = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{base}/api/cameras?token={KEY}", headers=headers).status_code == 200
        assert httpx.get(f"{base}/api/health?token=x").status_code == 200
        proc.terminate()
        proc.wait(30)
    out = log.read_text()
    assert "Logging error" not in out and "Traceback" not in out, out[-3000:]
    assert "/api/cameras?token=****" in out and "/api/health?token=****" in out, out[-3000:]
    assert KEY not in out
