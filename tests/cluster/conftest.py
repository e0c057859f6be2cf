"""Redis for the cluster tests: the real server on 127.0.0.1:6379, a key prefix of its own per test
(removed afterwards); skipped without it locally, a failure under CI=true."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.cluster.keys import Keys, connect
from tests.support.services import require_service

REDIS_URL = os.environ.get("ARGUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def keys() -> Keys:
    return Keys(f"argus-test-{uuid.uuid4().hex[:12]}:")


@pytest.fixture
async def redis(redis_url: str, keys: Keys) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    try:
        yield client
    finally:
        found = [k async for k in client.scan_iter(match=f"{keys.prefix}*", count=1000)]
        if found:
            await client.delete(*found)
        await client.aclose()
