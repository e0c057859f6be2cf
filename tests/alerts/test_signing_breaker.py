"""Signature: HMAC-SHA256 over `timestamp.body`; circuit breaker: open after N failures, probe, close."""

from __future__ import annotations

import hashlib
import hmac

from app.alerts.breaker import BreakerState, CircuitBreaker
from app.alerts.sender import parse_retry_after
from app.alerts.signing import encode, signature, signed_headers, verify
from tests.alerts.conftest import FakeClock


class TestSigning:
    def test_signature_is_hmac_of_timestamp_dot_body(self) -> None:
        body = encode({"b": 1, "a": "x"})
        expected = hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256).hexdigest()
        assert signature("k3y", "1700000000", body) == f"sha256={expected}"
        assert body == b'{"a":"x","b":1}'

    def test_headers_verify_and_tampering_fails(self) -> None:
        body = encode({"id": "abc"})
        h = signed_headers("k3y", body, "abc", "alert", now=1_700_000_000)
        assert h["Idempotency-Key"] == "abc"
        ts, sig = h["X-Argus-Timestamp"], h["X-Argus-Signature"]
        assert verify("k3y", ts, body, sig, now=1_700_000_010)
        assert not verify("k3y", ts, body + b" ", sig, now=1_700_000_010)
        assert not verify("other", ts, body, sig, now=1_700_000_010)
        assert not verify("k3y", ts, body, sig, now=1_700_000_000 + 3600)  # a replay an hour later


class TestBreaker:
    def test_opens_after_threshold_then_probes_then_closes(self) -> None:
        clock = FakeClock()
        b = CircuitBreaker(threshold=3, reset_s=10.0, clock=clock)
        for _ in range(2):
            b.record_failure()
        assert not b.blocked()
        b.record_failure()
        assert b.state is BreakerState.open and b.blocked()
        clock.advance(10.0)
        assert b.probe_due() and not b.blocked()
        b.begin_probe()
        assert b.blocked()  # one probe at a time
        assert b.record_success() is True
        assert b.state is BreakerState.closed and not b.blocked()

    def test_failed_probe_waits_twice_as_long_up_to_the_cap(self) -> None:
        clock = FakeClock()
        b = CircuitBreaker(threshold=1, reset_s=10.0, max_reset_s=25.0, clock=clock)
        b.record_failure()
        waits = []
        for _ in range(3):
            clock.now = b.probe_at
            b.begin_probe()
            b.record_failure()
            waits.append(b.probe_at - clock.now)
        assert waits == [20.0, 25.0, 25.0]


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
