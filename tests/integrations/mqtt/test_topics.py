"""Topics, event messages and Home Assistant discovery configs (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.events.types import NewEvent, Phase
from app.integrations.mqtt.options import check_topic_prefix, parse_mqtt_url
from app.integrations.mqtt.topics import CameraInfo, Topics, discovery_configs, event_view, sensor_leaf, slug
from app.kit.severity import Severity
from app.kit.urls import UrlError

TOPICS = Topics("argus", "homeassistant")


class TestNames:
    def test_camera_names_become_one_topic_level(self) -> None:
        assert slug("Front Door/2 #1") == "front_door_2_1"
        assert slug("+++") == "camera"

    def test_an_event_type_never_takes_another_topic_of_the_camera(self) -> None:
        assert sensor_leaf("anomaly") == "anomaly"
        assert sensor_leaf("state") == "state_event"

    def test_enabled_set_topics_name_their_camera(self) -> None:
        assert TOPICS.camera_of_set("argus/lobby/enabled/set") == "lobby"
        assert TOPICS.camera_of_set("argus/lobby/enabled/state") is None
        assert TOPICS.camera_of_set("other/lobby/enabled/set") is None


class TestOptions:
    def test_url_parts_and_defaults(self) -> None:
        o = parse_mqtt_url("mqtts://argus:p%40ss@broker.lan")
        assert (o.host, o.port, o.tls, o.username, o.password) == ("broker.lan", 8883, True, "argus", "p@ss")
        assert o.masked_url == "mqtts://argus:****@broker.lan"
        assert "p%40ss" not in repr(o)

    @pytest.mark.parametrize("url", ["http://h", "mqtt://", "mqtt://h/path", "mqtt://u:secretpw@h?x=1"])
    def test_bad_urls_are_refused_without_echoing_them(self, url: str) -> None:
        with pytest.raises(UrlError) as info:
            parse_mqtt_url(url)
        assert "secretpw" not in str(info.value)

    def test_prefixes_have_no_wildcards(self) -> None:
        assert check_topic_prefix("site/argus", "p") == "site/argus"
        for bad in ("a/+", "#", "/a", "a/"):
            with pytest.raises(ValueError):
                check_topic_prefix(bad, "p")


class TestDiscovery:
    def test_one_device_per_camera_with_sensors_switch_and_camera(self) -> None:
        cam = CameraInfo(3, "Lobby", True, "streaming", 15.0, ("anomaly", "object"))
        configs = {t: json.loads(p) for t, p in discovery_configs(TOPICS, cam).items()}
        assert set(configs) == {
            "homeassistant/sensor/argus_lobby/state/config",
            "homeassistant/sensor/argus_lobby/fps/config",
            "homeassistant/switch/argus_lobby/enabled/config",
            "homeassistant/camera/argus_lobby/snapshot/config",
            "homeassistant/binary_sensor/argus_lobby/anomaly/config",
            "homeassistant/binary_sensor/argus_lobby/object/config",
        }
        anomaly = configs["homeassistant/binary_sensor/argus_lobby/anomaly/config"]
        assert anomaly["state_topic"] == "argus/lobby/anomaly" and anomaly["device_class"] == "problem"
        assert anomaly["availability_topic"] == "argus/available"
        assert anomaly["device"]["identifiers"] == ["argus_lobby"]
        assert configs["homeassistant/camera/argus_lobby/snapshot/config"]["topic"] == "argus/lobby/snapshot"
        switch = configs["homeassistant/switch/argus_lobby/enabled/config"]
        assert switch["command_topic"] == "argus/lobby/enabled/set"
        assert len({c["unique_id"] for c in configs.values()}) == len(configs)

    def test_event_view_links_the_snapshot_and_hides_the_path(self) -> None:
        e = NewEvent(1, "anomaly", Severity.high, datetime.now(UTC), snapshot_path="snapshots/1/x.jpg")
        view = event_view(e.evolve(phase=Phase.update), "Lobby", "https://argus.example")
        assert view["snapshot_url"] == f"https://argus.example/api/events/{e.id}/snapshot.jpg"
        assert "snapshot_path" not in view and view["camera"] == "Lobby" and view["has_snapshot"]
