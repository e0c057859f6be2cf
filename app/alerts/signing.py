"""Webhook signing, two ways on every request, so a receiver can use either.

- Argus's own: `X-Argus-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
- Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
  `webhook-signature: v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>`, so receivers
  verify with a maintained library. The key is the base64 part of a `whsec_` secret, else the secret's
  UTF-8 bytes (the libraries take those as `Webhook(secret.encode())`).

The timestamp is signed with the body so a receiver can refuse replays older than a few minutes; the
Idempotency-Key (the same value as `webhook-id`) lets it drop the duplicates of at-least-once delivery.
"""

from __future__ import annotations

import base64
import binascii
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
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
STANDARD_PREFIX = "whsec_"


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key: a `whsec_<base64>` secret's decoded bytes, else the secret's
    bytes. Raises ValueError for a `whsec_` secret that is not base64 (the API refuses those)."""
    if not secret.startswith(STANDARD_PREFIX):
        return secret.encode()
    encoded = secret[len(STANDARD_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    if not key:
        raise ValueError("a whsec_ secret must not be empty after the prefix")
    return key


def standard_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(standard_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


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
        STANDARD_ID_HEADER: idempotency_key,
        STANDARD_TIMESTAMP_HEADER: timestamp,
        STANDARD_SIGNATURE_HEADER: standard_signature(secret, idempotency_key, timestamp, body),
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
