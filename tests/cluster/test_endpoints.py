"""GET /api/nodes and POST /api/cameras/{id}/move on one node (no cluster): the node itself, a no-op move."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from app.config import Settings
from app.kit.db import create_engine, create_sessionmaker
from app.models import CameraLease, Event, Node


async def add_camera(client: httpx.AsyncClient) -> int:
    body = {"name": "lobby", "url": "rtsp://127.0.0.1:9/none", "enabled": False}
    response = await client.post("/api/cameras", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


class TestOneNode:
    async def test_nodes_lists_this_node_up(
        self, api_client: httpx.AsyncClient, db_settings: Settings
    ) -> None:
        response = await api_client.get("/api/nodes")
        assert response.status_code == 200
        assert response.json() == [
            {"name": db_settings.node_name, "state": "up", "capacity": 1.0, "cameras": [], "load": 0.0}
        ]

    async def test_status_names_this_node(self, api_client: httpx.AsyncClient, db_settings: Settings) -> None:
        camera_id = await add_camera(api_client)
        status = (await api_client.get(f"/api/cameras/{camera_id}/status")).json()
        assert status["node"] == db_settings.node_name

    async def test_move_to_this_node_is_a_no_op_and_others_are_refused(
        self, api_client: httpx.AsyncClient, db_settings: Settings
    ) -> None:
        camera_id = await add_camera(api_client)
        name = db_settings.node_name
        ok = await api_client.post(f"/api/cameras/{camera_id}/move", json={"node": name})
        assert ok.status_code == 200
        assert ok.json() == {"camera_id": camera_id, "node": name, "from_node": name}
        other = await api_client.post(f"/api/cameras/{camera_id}/move", json={"node": "elsewhere"})
        assert other.status_code == 422
        missing = await api_client.post(f"/api/cameras/{camera_id + 99}/move", json={"node": name})
        assert missing.status_code == 404

    async def test_a_camera_can_be_pinned_and_unpinned(self, api_client: httpx.AsyncClient) -> None:
        camera_id = await add_camera(api_client)
        pinned = await api_client.patch(f"/api/cameras/{camera_id}", json={"pinned_node": "node-2"})
        assert pinned.status_code == 200 and pinned.json()["pinned_node"] == "node-2"
        unpinned = await api_client.patch(f"/api/cameras/{camera_id}", json={"pinned_node": None})
        assert unpinned.status_code == 200 and unpinned.json()["pinned_node"] is None

    async def test_one_node_writes_no_cluster_rows(
        self, api_client: httpx.AsyncClient, db_settings: Settings
    ) -> None:
        await add_camera(api_client)
        response = await api_client.post("/api/events", json={"type": "door", "severity": "high"})
        assert response.status_code == 202, response.text
        engine = create_engine(db_settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                for model in (Node, CameraLease):
                    assert (await session.execute(select(func.count()).select_from(model))).scalar_one() == 0
                fences = (await session.execute(select(Event.fence))).scalars().all()
                assert fences == [None]
        finally:
            await engine.dispose()
