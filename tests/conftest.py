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


@pytest.fixture(scope="module")
def shapes_workspace(tmp_path_factory: pytest.TempPathFactory):
    """A workspace shared by one test module, holding the `shapes` demo; yields its Store."""
    from core.datasets import add_demo
    from core.store import Store

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNN_STUDIO_HOME", str(tmp_path_factory.mktemp("module") / "workspace"))
        patch.delenv("CNN_STUDIO_DB", raising=False)  # never a shared database
        add_demo("shapes", "shapes")
        yield Store()


@pytest.fixture(scope="session")
def train_shapes_run():
    """A function that trains a run on `shapes` in this process (one epoch of tiny-cnn on the
    CPU unless told otherwise) and returns its id; a few seconds each."""
    from core.config import TrainConfig
    from core.runs import execute_run, new_run

    def train(store, **settings) -> str:
        config = TrainConfig(**({"data": "shapes", "model": "tiny-cnn", "epochs": 1,
                                 "device": "cpu"} | settings))
        run_id = new_run(config, store, status="running")
        assert execute_run(run_id, store)["status"] == "completed"
        return run_id

    return train
