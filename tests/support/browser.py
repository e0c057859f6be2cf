"""Debian's headless Chromium for browser tests, driven by Playwright (never a downloaded browser).

The `page` fixture (tests/web/conftest.py) opens one; tests that need other flags launch CHROMIUM themselves.
"""

from __future__ import annotations

import os

import pytest

from tests.support.services import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = f"Debian chromium not installed at {CHROMIUM} (apt-get install chromium)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
