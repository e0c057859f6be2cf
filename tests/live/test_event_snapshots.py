"""An event announced on /ws/live has its snapshot ready: fetching it at once never gets a 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.conftest import AUTH, make_settings
from tests.live.conftest import LiveServer, _serve
from tests.support.media import media_path, write_video
from tests.support.viewer import Viewer


@pytest.fixture
def slow_flush_server(tmp_path: Path) -> Iterator[tuple[LiveServer, Settings]]:
    """The logger stores rows only every 30 s: an announced event is certainly not in the database yet."""
    settings = make_settings(tmp_path / "data", event_flush_interval_s=30.0, event_flush_size=1000)
    for server in _serve(settings):
        yield server, settings


async def test_an_announced_events_snapshot_is_served_before_its_row_is_stored(
    slow_flush_server: tuple[LiveServer, Settings],
) -> None:
    server, settings = slow_flush_server
    clip = write_video(media_path(settings, "burst.avi"), seconds=14, motion=(6.0, 8.0))
    camera_id = await server.add_camera("burst", str(clip), vad={})  # the VAD as the e2e test has it
    viewer = await Viewer.open(server.ws_auth_url())
    await viewer.subscribe([camera_id])
    # when the camera's anomaly event is announced to the dashboard
    announced = (await viewer.expect("event", timeout=40))["event"]
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=10) as http:
        # then its snapshot URL answers at once, as the dashboard fetches it (before: 404 until the flush)
        snapshot = await http.get(announced["snapshot_url"])
        assert snapshot.status_code == 200, snapshot.text
        assert snapshot.content[:2] == b"\xff\xd8"
        assert (await http.get(f"/api/events/{announced['id']}")).status_code == 404  # not stored yet
        # and an event that does not exist is still a 404
        assert (await http.get("/api/events/nope/snapshot.jpg")).status_code == 404
    await viewer.close()
