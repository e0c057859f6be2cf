"""MQTT: events, camera state and Home Assistant discovery to a broker (docs/mqtt.md)."""
