"""Redis for the cluster tests: the real server on 127.0.0.1:6379, a key prefix of its own per test
(removed afterwards); skipped without it locally, a failure under CI=true."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.cluster.keys import Keys, connect
from app.migrate import upgrade
from tests.support.cluster_nodes import Cluster
from tests.support.rtsp import RtspServer, require_gstreamer
from tests.support.services import fresh_postgres_database, require_service, truncate_all_sync

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


# -- several members on one PostgreSQL (tests/support/cluster_nodes.py) --


@pytest.fixture(scope="module")
def cluster_db() -> Iterator[str]:
    """A database of its own (created, migrated, dropped afterwards), shared by a module's tests."""
    with fresh_postgres_database() as url:
        with ThreadPoolExecutor(1) as ex:  # Alembic's env runs its own event loop
            ex.submit(upgrade, url).result()
        yield url


@pytest.fixture
def cluster_db_url(cluster_db: str) -> str:
    truncate_all_sync(cluster_db)
    return cluster_db


@pytest.fixture(scope="module")
def cameras_rtsp() -> Iterator[RtspServer]:
    """Six small, slow streams: real RTSP pipelines that cost little on a 2-core machine."""
    require_gstreamer()
    with RtspServer(mounts=6, width=160, height=120, fps=5) as server:
        yield server


@pytest.fixture
async def cluster(cluster_db_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    made = Cluster(cluster_db_url, tmp_path)
    watcher = asyncio.create_task(made.watch_overlaps())
    try:
        yield made
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        for node in list(made.nodes.values()):
            with contextlib.suppress(Exception):
                await node.stop()
