"""The Export tab's model package (FP32 against INT8, the changed-answer gallery) and the
Classify page's "Use this model elsewhere" panel, under AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core.serving.quantize as quantize
from core.config import TrainConfig
from core.runs.execute import execute_run
from core.runs.record import new_run, run_folder
from core.store import Store
from tests.unit.test_package import sabotaged

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def trained_run(shapes_dataset) -> str:
    store = Store()
    run_id = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=1, name="first"), store,
                     status="running")
    execute_run(run_id, store)
    return run_id


def open_classify() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/classify.py").run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements).replace("\\", "")  # plain()


def test_an_int8_package_from_the_page_shows_fp32_against_int8(trained_run) -> None:
    at = open_classify()
    assert "Build a package on the Export tab first" in texts(at.caption)
    assert "curl -F file=@photo.jpg http://127.0.0.1:8000/predict" in texts(at.code)
    assert f"python -m core serve --run {trained_run} --port 8000" in texts(at.code)
    at.button(key="package_go").click().run()
    assert not at.exception, at.exception
    zip_path = run_folder(trained_run) / "exports" / "first.zip"
    assert zip_path.is_file()
    card = json.loads(zip_path.with_name("first.zip.card.json").read_text())
    frame = at.dataframe[-1].value
    assert list(frame["model"]) == ["FP32", "INT8"]
    assert f"{card['quantization']['int8']['accuracy']:.2%}" in list(frame["test accuracy"])
    labels = [button.proto.label for button in at.get("download_button")]
    assert "Download the model package" in labels


def test_a_refused_int8_says_so_and_shows_the_changed_images(trained_run, monkeypatch) -> None:
    monkeypatch.setattr(quantize, "write_int8", sabotaged)
    at = open_classify()
    at.button(key="package_go").click().run()
    assert not at.exception, at.exception
    assert "not good enough: the package holds the FP32 model" in texts(at.warning)
    assert "Images whose answer changed" in texts(at.markdown)
    card = json.loads((run_folder(trained_run) / "exports" / "first.zip.card.json").read_text())
    assert card["precision"] == "fp32" and card["quantization"]["changed_count"] > 0
    assert len(at.get("image")) == min(24, card["quantization"]["changed_count"])


def test_the_formats_table_marks_the_fastest_near_fp32(trained_run) -> None:
    rows = [{"format": name, "accuracy": acc, "p50_ms": p50, "p90_ms": p50 * 2,
             "images_per_s": 1000 / p50, "size_mb": 2.0, "device": "cpu", "best": best}
            for name, acc, p50, best in (("PyTorch eager", 0.9, 1.0, False),
                                         ("ONNX INT8", 0.9, 0.2, True))]
    store = Store()
    summary = store.get_run(trained_run)["summary"]
    store.update_run(trained_run, summary=summary | {"format_bench": {
        "rows": rows, "images": 30, "split": "test", "threads": 2, "cpus": 2, "at": 0}})
    at = open_classify()
    frame = next(f.value for f in at.dataframe if "images/s (batch 32)" in f.value.columns)
    assert list(frame["format"]) == ["PyTorch eager", "★ ONNX INT8"]
    assert list(frame["test accuracy"]) == ["90.00%", "90.00%"]
    assert "30 test images; CPU, 2 threads of 2 cores" in texts(at.caption)
