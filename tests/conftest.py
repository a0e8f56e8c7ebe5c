"""Shared fixtures: every test gets its own workspace (CNN_STUDIO_HOME) and store."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace for this test alone; core reads CNN_STUDIO_HOME at call time, and the
    store (keyed by URL) gets a fresh SQLite file under it."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("CNN_STUDIO_HOME", str(home))
    monkeypatch.delenv("CNN_STUDIO_DB", raising=False)
    return home


@pytest.fixture
def shapes_dataset(studio_home: Path):
    """The built-in `shapes` demo (300 32x32 colour images, 3 classes) as dataset `shapes`."""
    from core.datasets import add_demo

    return add_demo("shapes", "shapes")
