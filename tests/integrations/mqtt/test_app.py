"""MQTT through the whole app against the shared Mosquitto on 127.0.0.1:1883 (skipped with a reason when it
is not running, a failure under CI=true): discovery for a camera created by the API, events with
before/after, binary sensors, the snapshot, the enable switch, removal on delete, and /api/health."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import numpy as np
import pytest

from app.config import Settings
from app.events.snapshots import write_snapshot
from app.events.types import NewEvent, Phase
from app.kit.severity import Severity
from app.lifespan import Runtime
from app.main import create_app
from tests.conftest import AUTH, make_settings
from tests.support.mqtt import SHARED_PORT, Subscriber, clear_retained, require_shared_broker, unique_prefix

PASSWORD = "hunter2-mqtt-secret"  # the shared broker is anonymous: it ignores the credentials


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    require_shared_broker()
    prefix = unique_prefix()
    return make_settings(
        tmp_path / "data",
        mqtt_url=f"mqtt://argus:{PASSWORD}@127.0.0.1:{SHARED_PORT}",
        mqtt_prefix=prefix,
        mqtt_discovery_prefix=f"{prefix}_ha",
    )


class App:
    def __init__(
        self, client: httpx.AsyncClient, runtime: Runtime, sub: Subscriber, settings: Settings
    ) -> None:
        self.client, self.rt, self.sub = client, runtime, sub
        self.prefix, self.ha = settings.mqtt_prefix, settings.mqtt_discovery_prefix

    def json(self, topic: str) -> Any:
        payload = self.sub.last(topic)
        return json.loads(payload) if payload else payload


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        rt: Runtime = application.state.runtime
        transport = httpx.ASGITransport(app=application)
        topics = [f"{settings.mqtt_prefix}/#", f"{settings.mqtt_discovery_prefix}/#"]
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client,
            Subscriber(SHARED_PORT, topics) as sub,
        ):
            yield App(client, rt, sub, settings)
        retained = list(rt.mqtt._retained)
    await clear_retained(SHARED_PORT, retained)


async def make_camera(app: App, name: str = "Front Door") -> dict[str, Any]:
    r = await app.client.post("/api/cameras", json={"name": name, "url": "rtsp://127.0.0.1:9/cam"})
    assert r.status_code == 201, r.text
    await app.rt.mqtt.refresh()  # the bridge also polls the cameras every few seconds
    return r.json()  # type: ignore[no-any-return]


class TestHomeAssistant:
    async def test_a_new_camera_gets_a_device_and_a_deleted_one_loses_it(self, app: App) -> None:
        cam = await make_camera(app)
        anomaly = f"{app.ha}/binary_sensor/argus_front_door/anomaly/config"
        await app.sub.wait_until(lambda: app.sub.last(anomaly) is not None, what="discovery")
        config = app.json(anomaly)
        assert config["state_topic"] == f"{app.prefix}/front_door/anomaly"
        assert config["device"]["name"] == "Front Door"
        await app.sub.wait_until(lambda: app.sub.last(f"{app.prefix}/available") == b"online")
        for leaf in ("state", "fps", "enabled/state", "anomaly"):
            await app.sub.wait_until(
                lambda leaf=leaf: app.sub.last(f"{app.prefix}/front_door/{leaf}") is not None
            )
        assert app.sub.last(f"{app.prefix}/front_door/anomaly") == b"OFF"
        # when
        assert (await app.client.delete(f"/api/cameras/{cam['id']}")).status_code == 204
        # then: empty retained configs, which Home Assistant reads as "remove this entity"
        await app.sub.wait_until(lambda: app.sub.last(anomaly) == b"", what="discovery removed")
        state_config = f"{app.ha}/sensor/argus_front_door/state/config"
        assert app.sub.last(state_config) == b""

    async def test_enabled_set_disables_the_camera_through_the_service(self, app: App) -> None:
        cam = await make_camera(app)
        async with aiomqtt.Client("127.0.0.1", SHARED_PORT) as client:
            await client.publish(f"{app.prefix}/front_door/enabled/set", b"OFF", qos=1)
        topic = f"{app.prefix}/front_door/enabled/state"
        await app.sub.wait_until(lambda: app.sub.last(topic) == b"OFF", what="enabled echo")
        assert (await app.client.get(f"/api/cameras/{cam['id']}")).json()["enabled"] is False
        await app.sub.wait_until(lambda: app.sub.last(f"{app.prefix}/front_door/state") == b"stopped")


class TestEvents:
    async def test_an_episode_is_new_update_end_with_before_after_sensor_and_snapshot(
        self, app: App, settings: Settings
    ) -> None:
        cam = await make_camera(app)
        opened = NewEvent(cam["id"], "anomaly", Severity.high, datetime.now(UTC), score=2.0)
        jpeg_path = write_snapshot(settings.data_dir, opened.id, cam["id"], np.zeros((8, 8, 3), np.uint8))
        opened = opened.evolve(snapshot_path=jpeg_path)
        # when
        app.rt.bus.publish(opened)
        app.rt.bus.publish(opened.evolve(phase=Phase.update, score=3.0))
        app.rt.bus.publish(opened.evolve(phase=Phase.close, score=3.0, ended_at=datetime.now(UTC)))
        # then
        events = f"{app.prefix}/events"
        await app.sub.wait_until(lambda: len(app.sub.on(events)) >= 3, what="three event messages")
        new, update, end = (json.loads(p) for p in app.sub.on(events))
        assert [new["type"], update["type"], end["type"]] == ["new", "update", "end"]
        assert new["before"] is None and new["after"]["camera"] == "Front Door"
        assert update["before"]["score"] == 2.0 and update["after"]["score"] == 3.0
        assert end["before"] == update["after"] and end["after"]["ended_at"] is not None
        assert new["after"]["snapshot_url"] == f"/api/events/{opened.id}/snapshot.jpg"
        sensor = f"{app.prefix}/front_door/anomaly"
        await app.sub.wait_until(lambda: app.sub.on(sensor)[-2:] == [b"ON", b"OFF"], what="ON then OFF")
        snapshot = app.sub.last(f"{app.prefix}/front_door/snapshot")
        assert snapshot is not None and snapshot.startswith(b"\xff\xd8")  # the JPEG itself


class TestHealth:
    async def test_health_and_metrics_show_the_connection_without_the_password(
        self, app: App, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO)
        await app.sub.wait_until(lambda: app.rt.mqtt.connected, what="connected")
        body = (await app.client.get("/api/health")).json()
        assert body["mqtt"]["connected"] is True and body["mqtt"]["dropped"] == 0
        assert body["mqtt"]["url"] == f"mqtt://argus:****@127.0.0.1:{SHARED_PORT}"
        metrics = (await app.client.get("/metrics")).text
        assert "argus_mqtt_connected 1.0" in metrics
        assert PASSWORD not in json.dumps(body) and PASSWORD not in metrics and PASSWORD not in caplog.text
