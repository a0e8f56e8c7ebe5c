"""Issue 17 on the pages (AppTest): the time estimate before a run on Train and Sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import pages.ui.estimate
from core.training.estimate import Probe

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 60  # the first run imports torch and timm


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


@pytest.fixture
def probe_measures(monkeypatch):
    """Make the device probe report `rate` FLOP/s on a CPU (no measuring in tests)."""
    def fake(rate: float) -> None:
        pages.ui.estimate.probed.clear()
        monkeypatch.setattr(pages.ui.estimate, "probe_rate",
                            lambda *args, **kwargs: Probe("cpu", rate))
    yield fake
    pages.ui.estimate.probed.clear()


def test_train_says_how_long_before_start_and_that_it_is_a_cpu(shapes_dataset,
                                                                probe_measures) -> None:
    probe_measures(1e15)
    at = open_page("pages/train.py")
    shown = texts(at.info)
    assert "Estimated time: about 5 s on this CPU" in shown
    assert "no GPU is visible" in shown
    assert not at.warning


def test_train_warns_before_a_cpu_run_longer_than_ten_minutes(shapes_dataset,
                                                              probe_measures) -> None:
    probe_measures(1e5)
    at = open_page("pages/train.py")
    warned = texts(at.warning)
    assert "longer than 10 minutes" in warned and "cpu-quick" in warned


def test_sweep_sums_its_runs(shapes_dataset, probe_measures) -> None:
    probe_measures(1e15)
    at = open_page("pages/sweeps.py")
    assert "Estimated time for the sweep: about" in texts(at.info)
    probe_measures(1e5)
    at.run()
    assert "Estimated time for the sweep" in texts(at.warning)
