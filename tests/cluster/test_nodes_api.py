"""Two apps in cluster mode on one PostgreSQL (and Redis): GET /api/nodes, camera status and move, seen
from either node, with real RTSP cameras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.cluster.keys import Keys
from app.main import create_app
from tests.conftest import AUTH, make_settings
from tests.support.rtsp import RtspServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.rtsp]


@asynccontextmanager
async def two_nodes(
    tmp_path: Path, db_url: str, redis_url: str, keys: Keys
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients = {}
        for name in ("n1", "n2"):
            extra = {
                "redis_url": redis_url,
                "redis_prefix": keys.prefix,
                "node_name": name,
                "lease_ttl_s": 3.0,
            }
            app: FastAPI = create_app(make_settings(tmp_path / name, database_url=db_url, **extra))
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=f"http://{name}", headers=AUTH)
            )
        yield clients


async def nodes(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/nodes")
    assert response.status_code == 200, response.text
    return {n["name"]: n for n in response.json()}


async def test_nodes_status_and_move_from_any_node(
    tmp_path: Path, clean_postgres_url: str, redis_url: str, keys: Keys, cameras_rtsp: RtspServer
) -> None:
    async with two_nodes(tmp_path, clean_postgres_url, redis_url, keys) as clients:
        # given: two cameras made on n1
        ids = []
        for mount in (1, 2):
            body = {"name": f"cam{mount}", "url": cameras_rtsp.url(mount), "vad": {"enabled": False}}
            response = await clients["n1"].post("/api/cameras", json=body)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])

        # then: one camera on each node, as n2 sees it
        async def spread() -> dict[str, dict[str, Any]] | None:
            seen = await nodes(clients["n2"])
            ok = len(seen) == 2 and all(n["state"] == "up" and len(n["cameras"]) == 1 for n in seen.values())
            return seen if ok else None

        seen = await eventually(spread, 20, what="one camera on each node")
        assert sorted(c for n in seen.values() for c in n["cameras"]) == sorted(ids)
        assert {n["load"] for n in seen.values()} == {1.0}
        on_n1 = seen["n1"]["cameras"][0]
        status = (await clients["n1"].get(f"/api/cameras/{on_n1}/status")).json()
        assert status["node"] == "n1"
        elsewhere = (await clients["n2"].get(f"/api/cameras/{on_n1}/status")).json()
        assert elsewhere["node"] == "n1"

        # when: n2 is asked to move n1's camera to n2
        moved = await clients["n2"].post(f"/api/cameras/{on_n1}/move", json={"node": "n2"})
        assert moved.status_code == 200, moved.text
        assert moved.json() == {"camera_id": on_n1, "node": "n2", "from_node": "n1"}

        # then
        async def on_n2() -> bool:
            return sorted((await nodes(clients["n1"]))["n2"]["cameras"]) == sorted(ids)

        await eventually(on_n2, 20, what="both cameras on n2")
        refused = await clients["n1"].post(f"/api/cameras/{on_n1}/move", json={"node": "n9"})
        assert refused.status_code == 422
