"""The dashboard's static files: only the page's own, and a bad name is a 404, never a 500."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("name", ["a" * 300 + ".js", "..%2Fapp.py", ".env.js", "main.py", "nope.css"])
async def test_a_name_that_is_not_a_page_file_is_404(app_client: httpx.AsyncClient, name: str) -> None:
    r = await app_client.get(f"/static/{name}")
    assert r.status_code == 404, r.text  # over 255 bytes (ENAMETOOLONG) used to be a 500


async def test_the_page_files_are_served(app_client: httpx.AsyncClient) -> None:
    assert (await app_client.get("/static/app.js")).status_code == 200


async def test_the_page_revalidates_and_a_known_copy_is_304(app_client: httpx.AsyncClient) -> None:
    page = await app_client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["cache-control"] == "no-cache"
    script = await app_client.get("/static/app.js")
    assert script.headers["cache-control"] == "no-cache" and script.headers["etag"]
    again = await app_client.get("/static/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304


async def test_only_the_web_folder_is_served(app_client: httpx.AsyncClient) -> None:
    for path in ("/static/../main.py", "/static/%2e%2e/main.py", "/static//etc/passwd", "/static/"):
        assert (await app_client.get(path)).status_code == 404, path
