"""The browser fixture of the web tests: a fresh headless Chromium page per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium


@pytest.fixture
async def page() -> AsyncIterator[object]:
    """A 1440x900 page; uncaught page errors are collected in `page.errors`."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = await browser.new_context(viewport={"width": 1440, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors  # type: ignore[attr-defined]
        yield page
        await browser.close()
