"""The Datasets and Train pages say what training chooses from the data, and why."""

from __future__ import annotations

from pathlib import Path

from data_sets import arrow_dataset, imbalanced_dataset
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 60  # the first run imports torch and timm


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements).replace("\\", "")  # unescaped


def test_the_datasets_page_shows_the_flip_decision_and_its_reason(studio_home) -> None:
    arrow_dataset()
    at = open_page("pages/datasets.py")
    shown = texts(at.caption)
    assert "flips off: mirrored images of" in shown and "Override it on the Train page" in shown
    assert at.checkbox(key="aug_flip").value is False  # the preview starts as training will


def test_the_train_page_says_what_auto_flip_decides(studio_home) -> None:
    arrow_dataset()
    at = open_page("pages/train.py")
    assert "Flip (auto): flips off" in texts(at.caption)
    at.selectbox(key="train_flip").set_value("on").run()
    assert "Flip set on by hand; the data test says flips off" in texts(at.caption)


def test_the_train_page_warns_of_imbalance_and_a_run_shows_balanced_accuracy(
        studio_home) -> None:
    from core.config import TrainConfig
    from core.runs.execute import execute_run
    from core.runs.record import new_run
    from core.store import Store

    imbalanced_dataset()
    at = open_page("pages/train.py")
    assert "classes are imbalanced: `big`" in texts(at.warning)
    store = Store()
    run_id = new_run(TrainConfig(data="skewed", model="tiny-cnn", epochs=1, device="cpu",
                                 balance="weights"), store, status="running")
    execute_run(run_id, store)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    assert "Balanced accuracy" in texts(at.markdown).replace("\\", "")
