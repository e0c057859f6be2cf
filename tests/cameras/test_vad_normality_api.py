"""The VAD's learned normality over the API: status shows learning, reset and a new URL forget it, the
normality picture is a PNG; the model file survives a restart of the camera."""

from __future__ import annotations

import cv2
import httpx
import numpy as np

from app.config import Settings
from tests.support.media import media_path, write_video
from tests.support.waiting import eventually


async def learning(client: httpx.AsyncClient, camera_id: int) -> dict | None:  # type: ignore[type-arg]
    r = await client.get(f"/api/cameras/{camera_id}/status")
    assert r.status_code == 200
    return r.json()["vad"]  # type: ignore[no-any-return]


async def has_learned(client: httpx.AsyncClient, camera_id: int, seconds: float) -> bool:
    vad = await learning(client, camera_id)
    return vad is not None and vad["learned_s"] >= seconds


async def test_learning_reset_and_url_change(app_client: httpx.AsyncClient, settings: Settings) -> None:
    clip = write_video(media_path(settings, "burst.avi"), seconds=8, motion=(2.0, 5.0))
    other = write_video(media_path(settings, "other.avi"), seconds=8)
    body = {"name": "learner", "url": str(clip), "vad": {"learn_s": 600}}
    cam = (await app_client.post("/api/cameras", json=body)).json()
    cid = cam["id"]

    await eventually(lambda: has_learned(app_client, cid, 2.0), 40)
    vad = await learning(app_client, cid)
    assert vad is not None and 0 < vad["learning"] < 1 and vad["learn_s"] == 600
    assert 0 < vad["model_bytes"] < 1_000_000

    png = await app_client.get(f"/api/cameras/{cid}/vad/normality.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == 640

    # a restart (disable, enable) keeps what was learned: the model was saved and is loaded again
    await app_client.patch(f"/api/cameras/{cid}", json={"enabled": False})
    assert (settings.data_dir / "vad" / f"camera-{cid}.npz").is_file()
    before = vad["learned_s"]
    await app_client.patch(f"/api/cameras/{cid}", json={"enabled": True})
    restarted = await eventually(lambda: learning(app_client, cid), 20)
    assert restarted["learned_s"] >= before

    r = await app_client.post(f"/api/cameras/{cid}/vad/reset")
    assert r.status_code == 204
    assert (await learning(app_client, cid))["learned_s"] < before  # type: ignore[index]
    assert not (settings.data_dir / "vad" / f"camera-{cid}.npz").exists()

    await eventually(lambda: has_learned(app_client, cid, 2.0), 40)
    await app_client.patch(f"/api/cameras/{cid}", json={"url": str(other)})
    vad = await learning(app_client, cid)
    assert vad is not None and vad["learned_s"] < 1.0  # another scene: learning starts over

    assert (await app_client.post("/api/cameras/999999/vad/reset")).status_code == 404
    assert (await app_client.get("/api/cameras/999999/vad/normality.png")).status_code == 404
