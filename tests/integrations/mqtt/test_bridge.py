"""MqttBridge against a private Mosquitto process: broker restart mid-burst, replay in order after an
outage, a bounded queue whose overflow is counted, credentials that never show."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from app.events.bus import EventBus
from app.events.types import NewEvent, Phase
from app.integrations.mqtt.bridge import MqttBridge
from app.integrations.mqtt.options import MqttOptions, parse_mqtt_url
from app.integrations.mqtt.topics import CameraInfo
from app.kit.backoff import Backoff
from app.kit.severity import Severity
from tests.support.mqtt import Mosquitto, subscribed
from tests.support.waiting import eventually

CAMERAS = [
    CameraInfo(1, "Lobby", True, "streaming", 15.0, ("anomaly",)),
    CameraInfo(2, "Yard", True, "streaming", 15.0),
]


@dataclass
class Cameras:
    infos: list[CameraInfo] = field(default_factory=lambda: list(CAMERAS))
    switched: list[tuple[int, bool]] = field(default_factory=list)

    async def list(self) -> list[CameraInfo]:
        return self.infos

    async def set_enabled(self, camera_id: int, enabled: bool) -> None:
        self.switched.append((camera_id, enabled))
        self.infos = [replace(c, enabled=enabled) if c.id == camera_id else c for c in self.infos]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as b:
        yield b


def options(port: int, userinfo: str = "", **kw: object) -> MqttOptions:
    return replace(parse_mqtt_url(f"mqtt://{userinfo}127.0.0.1:{port}"), prefix="argus", **kw)  # type: ignore[arg-type]


def bridge_for(opts: MqttOptions, cameras: Cameras, tmp_path: Path) -> MqttBridge:
    return MqttBridge(
        opts,
        cameras=cameras.list,
        set_enabled=cameras.set_enabled,
        data_dir=tmp_path,
        backoff=Backoff(initial=0.05, cap=0.2),
        ack_timeout_s=2.0,
    )


def burst(n: int, start: int = 0) -> list[NewEvent]:
    """n events alternating between two cameras, each opened then closed."""
    out = []
    for i in range(start, start + n):
        e = NewEvent(1 + i % 2, "anomaly", Severity.high, datetime.now(UTC), data={"i": i})
        out += [e, e.evolve(phase=Phase.close, ended_at=datetime.now(UTC))]
    return out


def received_events(payloads: list[bytes]) -> list[tuple[str, int]]:
    """(type, i) of every event message, first occurrence only (QoS 1 may repeat one after a restart)."""
    seen: dict[tuple[str, int], None] = {}
    for p in payloads:
        body = json.loads(p)
        seen.setdefault((body["type"], body["after"]["data"]["i"]), None)
    return list(seen)


def expected(events: list[NewEvent]) -> list[tuple[str, int]]:
    return [("new" if e.phase is Phase.open else "end", e.data["i"]) for e in events]


def per_camera(items: list[tuple[str, int]], camera: int) -> list[tuple[str, int]]:
    return [x for x in items if 1 + x[1] % 2 == camera]


class TestOutages:
    async def test_broker_restart_mid_burst_loses_nothing_and_keeps_order_per_camera(
        self, broker: Mosquitto, tmp_path: Path
    ) -> None:
        # given: a persistent subscriber (the broker keeps its messages across the restart)
        async with subscribed(broker.port, "argus/events", session="test-restart"):
            pass
        bus = EventBus()
        bridge = bridge_for(options(broker.port), Cameras(), tmp_path)
        events = burst(150)
        async with bridge:
            bus.subscribe("mqtt", bridge.consider)
            async with subscribed(broker.port, "argus/events", session="test-restart") as sub:
                await eventually(lambda: bridge.connected, 10)
                # when: a third of the burst is raised and the broker stops while it is being published;
                # another third is raised while it is down; then it restarts and the rest follows
                for e in events[:100]:
                    bus.publish(e)
                await sub.wait_until(lambda: len(sub.on("argus/events")) >= 20)
                broker.stop()
                for e in events[100:200]:
                    bus.publish(e)
                await bus.drain()
                await eventually(lambda: not bridge.connected, 10)
                assert bridge.stats()["queued"] > 0
                broker.start()
                for e in events[200:]:
                    bus.publish(e)
                # then: every event message arrives, in order per camera, none dropped
                want = expected(events)
                await sub.wait_until(lambda: len(received_events(sub.on("argus/events"))) >= len(want), 20)
                got = received_events(sub.on("argus/events"))
                assert sorted(got) == sorted(want)
                for camera in (1, 2):
                    assert per_camera(got, camera) == per_camera(want, camera)
                stats = bridge.stats()
                assert stats["dropped"] == 0 and stats["reconnects"] >= 1 and stats["connected"]
        await bus.close()

    async def test_events_raised_while_the_broker_is_down_are_bounded_and_overflow_is_counted(
        self, broker: Mosquitto, tmp_path: Path
    ) -> None:
        async with subscribed(broker.port, "argus/events", session="test-overflow"):
            pass
        broker.stop()
        # no cameras known: only event messages (each sensor ON/OFF would be one more ordered message)
        bridge = bridge_for(options(broker.port, queue_max=10), Cameras(infos=[]), tmp_path)
        events = burst(15)  # 30 event messages for a queue of 10
        async with bridge:
            for e in events:
                await bridge.consider(e)
            await eventually(lambda: bridge.stats()["last_error"] is not None, 10)
            stats = bridge.stats()
            assert stats["dropped"] == 20 and not stats["connected"] and "refused" in stats["last_error"]
            broker.start()
            async with subscribed(broker.port, "argus/events", session="test-overflow") as sub:
                await sub.wait_until(lambda: len(sub.on("argus/events")) >= 10, 20)
                assert received_events(sub.on("argus/events")) == expected(
                    events[-10:]
                )  # the newest, in order

    async def test_what_waits_at_a_stop_is_published_after_the_next_start(
        self, broker: Mosquitto, tmp_path: Path
    ) -> None:
        async with subscribed(broker.port, "argus/events", session="test-restart-argus"):
            pass
        broker.stop()
        events = burst(5)
        async with bridge_for(options(broker.port), Cameras(infos=[]), tmp_path) as first:
            for e in events[:6]:
                await first.consider(e)
        assert (tmp_path / "mqtt-pending.jsonl").exists()
        broker.start()
        async with bridge_for(options(broker.port), Cameras(infos=[]), tmp_path) as second:
            for e in events[6:]:
                await second.consider(e)
            async with subscribed(broker.port, "argus/events", session="test-restart-argus") as sub:
                await sub.wait_until(lambda: len(received_events(sub.on("argus/events"))) >= 10)
                assert received_events(sub.on("argus/events")) == expected(events)  # in order
        assert not (tmp_path / "mqtt-pending.jsonl").exists()


class TestCredentials:
    async def test_the_password_is_never_in_stats_errors_or_logs(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        with Mosquitto(tmp_path / "auth", users={"argus": "hunter2-right"}) as broker:
            good = bridge_for(options(broker.port, "argus:hunter2-right@"), Cameras(), tmp_path)
            async with good:
                await eventually(lambda: good.published > 0, 10)
            bad = bridge_for(options(broker.port, "argus:hunter2-wrong@"), Cameras(), tmp_path)
            async with bad:
                await eventually(lambda: bad.stats()["last_error"] is not None, 10)
                stats = bad.stats()
        assert "authoriz" in stats["last_error"].lower() or "refused" in stats["last_error"].lower()
        assert stats["url"] == f"mqtt://argus:****@127.0.0.1:{broker.port}" and not stats["connected"]
        assert "hunter2" not in json.dumps(stats) and "hunter2" not in caplog.text
        assert "hunter2" not in json.dumps(good.stats())


class TestTls:
    async def test_mqtts_with_a_private_ca_connects_and_without_it_is_refused(self, tmp_path: Path) -> None:
        with Mosquitto(tmp_path / "tls", tls=True) as broker:
            url = f"mqtts://127.0.0.1:{broker.port}"
            trusted = replace(parse_mqtt_url(url), ca_file=broker.ca_file)
            async with bridge_for(trusted, Cameras(), tmp_path) as bridge:
                await eventually(lambda: bridge.published > 0, 10)
                assert bridge.connected
            untrusted = bridge_for(parse_mqtt_url(url), Cameras(), tmp_path)  # the system's CAs only
            async with untrusted:
                await eventually(lambda: untrusted.stats()["last_error"] is not None, 10)
        assert "certificate" in untrusted.stats()["last_error"].lower() and not untrusted.connected


class TestCommands:
    async def test_enabled_set_switches_the_camera_and_echoes_its_state(
        self, broker: Mosquitto, tmp_path: Path
    ) -> None:
        cameras = Cameras()
        bridge = bridge_for(options(broker.port), cameras, tmp_path)
        async with bridge, subscribed(broker.port, "argus/#") as sub:
            await sub.wait_until(lambda: sub.last("argus/lobby/enabled/state") == b"ON")
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                await client.publish("argus/lobby/enabled/set", b"OFF", qos=1)
                await client.publish("argus/nope/enabled/set", b"OFF", qos=1)  # unknown: ignored
            await sub.wait_until(lambda: sub.last("argus/lobby/enabled/state") == b"OFF")
        assert cameras.switched == [(1, False)] and bridge.commands == 1
