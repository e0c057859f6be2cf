"""Camera URLs at the API edge: no control characters, local files only inside ARGUS_MEDIA_DIR with one
answer for every refusal, filesystem errors as 422, and every credential form masked wherever shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.kit.urls import MEDIA_UNUSABLE
from app.models import Camera
from tests.support.media import media_path, write_video
from tests.support.waiting import eventually


@pytest.fixture
def media(settings: Settings) -> Path:
    """A video in the media directory (DATA_DIR/media, the same for `settings` and `db_settings`)."""
    write_video(media_path(settings, "ok.avi"), seconds=1)
    return settings.resolved_media_dir


async def create(client: httpx.AsyncClient, url: str, name: str = "c", **kw: object) -> httpx.Response:
    return await client.post("/api/cameras", json={"name": name, "url": url, "enabled": False, **kw})


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://127.0.0.1:8202/a\r\nX-Injected: yes",
        "rtsp://127.0.0.1:8202/a\nb",
        "rtsp://127.0.0.1:8202/a\tb",
        "rtsp://127.0.0.1:8202/a b",
        "rtsp://127.0.0.1:8202/a\u2028b",
        " rtsp://127.0.0.1:8202/a",
    ],
)
async def test_control_characters_and_whitespace_are_422_naming_the_url(
    api_client: httpx.AsyncClient, url: str
) -> None:
    r = await create(api_client, url)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "url" and "control characters or whitespace" in r.json()["detail"]
    ok = await create(api_client, "rtsp://127.0.0.1:8202/a", name="ok")
    r = await api_client.patch(f"/api/cameras/{ok.json()['id']}", json={"url": url})
    assert r.status_code == 422 and r.json()["field"] == "url"
    await api_client.delete(f"/api/cameras/{ok.json()['id']}")


async def test_a_video_in_the_media_dir_is_accepted_by_relative_name(
    api_client: httpx.AsyncClient, media: Path
) -> None:
    r = await create(api_client, "ok.avi")
    assert r.status_code == 201, r.text
    assert r.json()["url"] == str(media / "ok.avi")


async def test_every_refused_local_path_gets_the_same_answer(
    api_client: httpx.AsyncClient, media: Path, tmp_path: Path
) -> None:
    outside = write_video(tmp_path / "outside.avi", seconds=1)  # a real video, but outside
    (media / "escape.avi").symlink_to(outside)
    os.mkfifo(media / "pipe.avi")
    cases = [
        "/etc/shadow",
        "/etc/passwd",
        "/proc/self/environ",
        "/dev/zero",
        "/no/such/file.mp4",
        str(outside),
        "../../outside.avi",
        "escape.avi",
        "pipe.avi",
        f"file://{outside}",
        "/" + "a" * 300 + ".mp4",  # ENAMETOOLONG used to be a 500
        str(media / ("b" * 300 + ".avi")),
    ]
    cam = (await create(api_client, "ok.avi", name="ok")).json()
    for url in cases:
        created = await create(api_client, url)
        patched = await api_client.patch(f"/api/cameras/{cam['id']}", json={"url": url})
        for r in (created, patched):
            assert r.status_code == 422, (url[:60], r.text)
            assert (r.json()["detail"], r.json()["field"]) == (MEDIA_UNUSABLE, "url"), url[:60]


async def test_a_long_path_segment_in_a_stream_url_is_not_a_filesystem_question(
    api_client: httpx.AsyncClient,
) -> None:
    r = await create(api_client, "rtsp://127.0.0.1:9/" + "a" * 300)
    assert r.status_code == 201, r.text


SECRETS = {
    "query password": "rtsp://127.0.0.1:9/s?password=S3cretA&channel=1",
    "query pwd": "rtsp://127.0.0.1:9/s?pwd=S3cretB",
    "query token": "http://127.0.0.1:9/mjpeg?Token=S3cretC",
    "token as user name": "rtsp://S3cretTokenD@127.0.0.1:9/x",
    "# in password": "rtsp://admin:S3#cretE@127.0.0.1:9/x",
    "/ in password": "rtsp://admin:S3/cretF@127.0.0.1:9/x",
}


async def test_no_credential_form_is_shown_in_listing_status_or_logs(
    app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ids = []
    for i, url in enumerate(SECRETS.values()):
        r = await app_client.post("/api/cameras", json={"name": f"c{i}", "url": url})
        assert r.status_code == 201, r.text
        assert "S3" not in r.text
        ids.append(r.json()["id"])

    async def all_tried() -> bool:  # every pipeline has tried its URL (and logged or failed)
        states = [(await app_client.get(f"/api/cameras/{i}/status")).json()["state"] for i in ids]
        return all(s != "connecting" for s in states)

    await eventually(all_tried, 20)
    shown = [(await app_client.get("/api/cameras")).text]
    for camera_id in ids:
        shown.append((await app_client.get(f"/api/cameras/{camera_id}")).text)
        shown.append((await app_client.get(f"/api/cameras/{camera_id}/status")).text)
    for text in [*shown, caplog.text]:
        assert "S3" not in text, text[:2000]
    assert "admin:****@" in shown[0] and "password=****" in shown[0] and "****@127.0.0.1" in shown[0]


async def test_a_url_sent_back_as_shown_keeps_its_password(
    api_app: FastAPI, api_client: httpx.AsyncClient
) -> None:
    # given: a camera whose URL GET shows masked
    url = "rtsp://admin:S3cret@127.0.0.1:9/x"
    cam = (await create(api_client, url)).json()
    assert cam["url"] == "rtsp://admin:****@127.0.0.1:9/x"
    # when: a client PATCHes back what it read (GET, edit, PATCH)
    r = await api_client.patch(f"/api/cameras/{cam['id']}", json={**cam_fields(cam), "name": "renamed"})
    assert r.status_code == 200, r.text
    # then: the stored URL still holds the password
    async with api_app.state.runtime.sessionmaker() as session:
        assert (await session.get(Camera, cam["id"])).url == url  # type: ignore[union-attr]


def cam_fields(cam: dict[str, object]) -> dict[str, object]:
    return {k: cam[k] for k in ("url", "enabled", "analysis_fps", "drop_policy")}
