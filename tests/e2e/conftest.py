"""Fixtures of the end-to-end lane: a Chromium, and a dashboard served on its own workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_app import CHROMIUM, CHROMIUM_ARGS, served


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
    with served(tmp_path / "workspace", tmp_path / "streamlit.log") as url:
        yield url


@pytest.fixture
def prepared_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's workspace, this process's too: what a test prepares here before it serves
    the dashboard (`live_app.served`), the browser sees."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("CNN_STUDIO_HOME", str(home))
    monkeypatch.delenv("CNN_STUDIO_DB", raising=False)
    return home
