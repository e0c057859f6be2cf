"""Digest: medium/low alerts wait for the next digest boundary and go out per webhook as one POST.

Boundaries are aligned on the epoch (every `interval_s`), so every digest row of a webhook created in
the same interval falls due at the same instant and the dispatcher claims them together, with no
timer state to lose on restart. The dispatcher stamps the claimed rows with one `digest_id` (the
delivery's Idempotency-Key), so a retried digest carries the same key.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any


def next_boundary(now: datetime, interval_s: float) -> datetime:
    ts = now.timestamp()
    return datetime.fromtimestamp(math.floor(ts / interval_s) * interval_s + interval_s, UTC)


def new_digest_id() -> str:
    return uuid.uuid4().hex


def digest_payload(digest_id: str, alerts: list[dict[str, Any]], created_at: datetime) -> dict[str, Any]:
    return {
        "type": "digest",
        "id": digest_id,
        "created_at": created_at.isoformat(),
        "count": len(alerts),
        "alerts": alerts,
    }
