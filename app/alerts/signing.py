"""Webhook signing: `X-Argus-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.

The timestamp is signed with the body so a receiver can refuse replays older than a few minutes; the
Idempotency-Key lets it drop the duplicates that at-least-once delivery allows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from app import __version__

SIGNATURE_HEADER = "X-Argus-Signature"
TIMESTAMP_HEADER = "X-Argus-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
KIND_HEADER = "X-Argus-Delivery"


def encode(payload: dict[str, Any]) -> bytes:
    """Compact, key-sorted JSON: the exact bytes that are signed are the bytes that are sent."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(
    secret: str, body: bytes, idempotency_key: str, kind: str, now: float | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        "User-Agent": f"Argus/{__version__}",
        IDEMPOTENCY_HEADER: idempotency_key,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        KIND_HEADER: kind,
    }


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver does: constant-time compare, and refuse stale timestamps (replays)."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(signature(secret, timestamp, body), header)
