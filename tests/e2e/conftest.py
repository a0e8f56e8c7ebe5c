"""Fixtures of the end-to-end lane: a Chromium, and a dashboard served on its own workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_app import CHROMIUM, CHROMIUM_ARGS, Server, kill_our_workers


@pytest.fixture
def browser():
    """Debian's Chromium through Playwright (closed after the test)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    """A dashboard on a fresh, empty workspace; the workers it starts are ended afterwards."""
    home = tmp_path / "workspace"
    server = Server(home, tmp_path / "streamlit.log")
    try:
        yield server.start()
    finally:
        server.stop()
        kill_our_workers(home)
