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
