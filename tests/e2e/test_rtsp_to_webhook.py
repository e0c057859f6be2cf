"""The whole product path: real RTSP -> VAD through the shared pool -> stored event -> signed webhook."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import AUTH, make_settings
from tests.support.rtsp import RtspServer
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def settings_fast_digest(tmp_path: Path) -> Settings:
    """Low/medium alerts go out in a 1-s digest, so whatever severity the VAD gives arrives quickly."""
    return make_settings(tmp_path / "data", digest_interval_s=1.0)


async def test_motion_on_rtsp_camera_reaches_webhook(
    rtsp_factory: type[RtspServer], settings_fast_digest: Settings
) -> None:
    # given: a camera on a still scene (colour bars), a webhook receiver and a rule for anomalies
    server = rtsp_factory(mounts=1, width=320, height=240, fps=15, source="smpte")
    server.start()
    app = create_app(settings_fast_digest)
    with WebhookReceiver() as receiver:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://a", headers=AUTH) as api:
                hook = await api.post(
                    "/api/webhooks", json={"name": "rx", "url": receiver.url, "secret": receiver.secret}
                )
                assert hook.status_code == 201, hook.text
                rule = {"name": "motion", "event_types": ["anomaly"], "min_severity": "low"}
                rule["webhook_ids"] = [hook.json()["id"]]
                assert (await api.post("/api/alert-rules", json=rule)).status_code == 201
                cam = (await api.post("/api/cameras", json={"name": "gate", "url": server.url()})).json()

                async def settled() -> bool:
                    status = (await api.get(f"/api/cameras/{cam['id']}/status")).json()
                    return status["state"] == "streaming" and status["frames_analyzed"] >= 40

                await eventually(settled, 60)

                # when: the scene starts moving (the camera reconnects to a moving ball)
                server.switch("ball")

                async def anomaly_events() -> list:  # type: ignore[type-arg]
                    r = await api.get("/api/events", params={"camera_id": cam["id"], "type": "anomaly"})
                    return r.json()["items"]  # type: ignore[no-any-return]

                events = await eventually(anomaly_events, 60)
                await receiver.wait_until(lambda rx: bool(rx.delivered), timeout=30)

    # then: the stored event reached the receiver, signed, with the camera URL masked
    delivered = receiver.delivered
    assert receiver.all_signed()
    bodies = [r.body.decode() for r in delivered]
    assert any(events[-1]["id"] in body for body in bodies), bodies
    assert all("rtsp://" not in b or "@" not in b for b in bodies)
