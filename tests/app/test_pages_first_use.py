"""Issue 17 on the pages (AppTest): the time estimate before a run on Train and Sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core.training.estimate
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
        monkeypatch.setattr(core.training.estimate, "probe_rate",
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


def test_a_timm_network_starts_from_a_weights_file_chosen_on_the_train_page(
        shapes_dataset, probe_measures, monkeypatch, tmp_path) -> None:
    from core.store import Store

    probe_measures(1e15)
    at = open_page("pages/train.py")
    at.segmented_control(key="train_kind").set_value("timm architecture").run()
    at.selectbox(key="train_timm").set_value("test_resnet").run()
    at.selectbox(key="train_weights_kind").set_value("file").run()
    weights = tmp_path / "test_resnet.safetensors"
    at.text_input(key="train_weights_file").input(str(weights)).run()
    assert at.number_input(key="train_freeze_epochs") is not None, "a trained backbone can freeze"
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    [run] = Store().list_runs()
    assert (run["model"], run["config"]["weights"]) == ("test_resnet", str(weights))


def test_webcam_pictures_join_their_class(studio_home, monkeypatch) -> None:
    from upload_files import png

    from core.data.dataset import load_dataset
    from core.runs import imports

    monkeypatch.setattr(imports, "ensure_import_worker", lambda: False)
    at = open_page("pages/datasets.py")
    at.toggle(key="tm_camera_on_0").set_value(True).run()
    assert at.get("camera_input"), "the webcam widget is shown once asked for"
    at.session_state["tm_shots_0"] = [png((200, 20 + i, 20), 16) for i in range(5)]  # 5 clicks
    at.text_input(key="tm_name_0").input("me")
    at.text_input(key="tm_name_1").input("empty-room")
    uploader = at.file_uploader(key="tm_files_1")
    for i in range(5):
        uploader.upload(f"room{i}.png", png((20, 20, 200 - i), 16), "image/png")
    at.run()
    assert "5 webcam picture(s) in this class." in texts(at.caption)
    at.text_input(key="tm_dataset_name").input("webcam")
    at.button(key="tm_go").click().run()
    assert imports.work_imports(idle_exit_s=0, poll_s=0) == 1
    dataset = load_dataset("webcam")
    assert sorted(dataset.classes) == ["empty-room", "me"]
    assert len(dataset.items) == 10


def test_the_name_rule_shows_before_a_submit_and_user_text_never_links(studio_home) -> None:
    from core.workspace import NAME_RULE
    from pages.ui.common import plain

    at = open_page("pages/datasets.py")
    for key in ("zip_name", "folder_name", "tm_dataset_name"):
        assert NAME_RULE in at.text_input(key=key).help
    for text in ("https://evil.example/x", "www.evil.example", "me@evil.example"):
        shown = plain(text)
        assert "://" not in shown.replace("\\", "") and "\u200b" in shown
        assert shown.replace("\\", "").replace("\u200b", "") == text  # reads as typed
