"""/docs and /redoc render in Chromium with no network beyond the Argus server: their files ship with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser


@pytest.fixture
async def offline_page(server_url: str) -> AsyncIterator[tuple[object, list[str]]]:
    """A page whose every request to anything but the Argus server fails, as on an offline network."""
    require_chromium()
    from playwright.async_api import async_playwright

    blocked: list[str] = []

    async def only_argus(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(server_url):
            await route.continue_()  # type: ignore[attr-defined]
        else:
            # ReDoc's bundle links its own logo (an <img> in the menu's "powered by" line): cosmetic only
            if route.request.resource_type != "image":  # type: ignore[attr-defined]
                blocked.append(url)
            await route.abort("internetdisconnected")  # type: ignore[attr-defined]

    async with async_playwright() as pw:
        # no name resolves either, so nothing could slip past the route below
        args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        await context.route("**/*", only_argus)
        yield await context.new_page(), blocked
        await browser.close()


async def test_swagger_ui_lists_the_operations_offline(
    offline_page: tuple[object, list[str]], server_url: str
) -> None:
    page, blocked = offline_page
    await page.goto(f"{server_url}/docs")  # type: ignore[attr-defined]
    await page.wait_for_selector(".opblock", timeout=20_000)  # type: ignore[attr-defined]
    paths = await page.eval_on_selector_all(  # type: ignore[attr-defined]
        ".opblock .opblock-summary-path", "nodes => nodes.map(n => n.dataset.path)"
    )
    assert {"/api/cameras", "/api/events", "/api/webhooks", "/api/api-keys"} <= set(paths), paths
    assert len(paths) >= 40
    assert blocked == []  # no script, style, font or data from outside Argus


async def test_redoc_renders_offline(offline_page: tuple[object, list[str]], server_url: str) -> None:
    page, blocked = offline_page
    await page.goto(f"{server_url}/redoc")  # type: ignore[attr-defined]
    await page.wait_for_selector(".api-content h2", timeout=30_000)  # type: ignore[attr-defined]
    headings = await page.eval_on_selector_all(  # type: ignore[attr-defined]
        ".api-content h2", "nodes => nodes.map(n => n.textContent)"
    )
    assert any(h.startswith("List webhooks") for h in headings), headings
    assert len(headings) >= 40
    assert blocked == []
