"""The Classify page under AppTest (best run by default, top-k with latency, Grad-CAM, two
models, classify many, export with parity, import) and the Train page's transfer options.

One tiny-cnn run on `shapes` is trained per test that needs it (~3 s); a second run is a copy
of its files with another recorded accuracy, so no second training is needed.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.data.demo import shapes_arrays
from core.runs.execute import execute_run
from core.runs.record import new_run, run_folder
from core.serving.export import export_run
from core.serving.infer import load_model
from core.store import Store
from pages.ui.charts import MUTED
from pages.ui.classify_images import UNKNOWN

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 60
CLASSES = ("circle", "square", "triangle")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def shape_pngs(per_class: int, seed: int = 7) -> dict[str, bytes]:
    """New shapes (not the training set's), as "class/n.png" → PNG bytes."""
    images, labels = shapes_arrays(per_class=per_class, seed=seed)["all"]
    return {f"{CLASSES[label]}/{index}.png": png(image)
            for index, (image, label) in enumerate(zip(images, labels, strict=True))}


def copy_run(source: str, name: str, test_acc: float) -> str:
    """A second completed run with the same model files and another test accuracy."""
    store = Store()
    config = store.get_run(source)["config"] | {"name": name}
    run_id = store.create_run(config, name=name, status="completed")
    shutil.copytree(run_folder(source), run_folder(run_id), dirs_exist_ok=True)
    store.update_run(run_id, test_acc=test_acc, best_val_acc=test_acc)
    return run_id


def first_shape() -> bytes:
    return next(iter(shape_pngs(1).values()))


def upload_one(at: AppTest, name: str = "circle.png") -> None:
    at.file_uploader(key="classify_files").upload(name, first_shape(), "image/png")


# Classify: one image ---------------------------------------------------------------------

def test_the_default_run_is_the_best_completed_one(trained_run) -> None:
    store = Store()
    store.update_run(trained_run, test_acc=0.50)
    best = copy_run(trained_run, "best", 0.90)
    copy_run(trained_run, "worse", 0.70)
    at = open_page("pages/classify.py")
    assert at.selectbox(key="classify_run").value == best
    caption = texts(at.caption)
    assert "test accuracy **90.0%**" in caption and "circle, square, triangle" in caption


def test_an_upload_gets_top_k_bars_and_its_latency(trained_run) -> None:
    at = open_page("pages/classify.py")
    upload_one(at)
    at.run()
    assert not at.exception, at.exception
    # the engine's answer: the top class, or "none of these" for the ~5% of images like no
    # training image (the run's detector; a one-epoch model's bank is 240 images)
    [answer] = load_model(trained_run).predict([Image.open(io.BytesIO(first_shape()))], 3)
    expected = UNKNOWN if answer["unknown"] else answer["top"][0]["label"]
    assert f"### {expected}" in texts(at.markdown)
    assert "predicted in" in texts(at.caption) and " ms" in texts(at.caption)
    [chart] = at.get("plotly_chart")
    bars = json.loads(chart.proto.spec)["data"][0]
    assert bars["type"] == "bar" and len(bars["y"]) == 3


def test_an_out_of_distribution_upload_is_none_of_the_classes_i_know(shapes_dataset) -> None:
    store = Store()  # six epochs: enough for the detector to tell noise from shapes
    run_id = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=6, seed=0,
                                 name="six"), store, status="running")
    execute_run(run_id, store)
    at = open_page("pages/classify.py")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    at.file_uploader(key="classify_files").upload("noise.png", png(noise), "image/png")
    at.run()
    assert not at.exception, at.exception
    assert f"### {UNKNOWN}" in texts(at.markdown) and UNKNOWN == "None of the classes I know"
    assert "greyed" in texts(at.caption)
    [chart] = at.get("plotly_chart")
    bars = json.loads(chart.proto.spec)["data"][0]
    assert bars["marker"]["color"] == MUTED and len(bars["y"]) == 3  # the guesses, greyed


def test_grad_cam_draws_a_heat_map_with_an_opacity_slider(trained_run) -> None:
    at = open_page("pages/classify.py")
    at.toggle(key="classify_cam").set_value(True)
    upload_one(at)
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 2  # the upload and its heat map
    at.slider(key="classify_opacity").set_value(0.9).run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 2


def test_a_second_model_shows_beside_the_first(trained_run) -> None:
    second = copy_run(trained_run, "second", 0.4)
    at = open_page("pages/classify.py")
    at.toggle(key="classify_compare").set_value(True)
    upload_one(at)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="classify_run2").value == second
    headings = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert len(headings) == 2, "one prediction per model"
    assert texts(at.caption).count("predicted in") == 2
    assert "agree" in texts(at.caption)


def test_a_broken_checkpoint_gives_a_message_not_a_traceback(trained_run) -> None:
    (run_folder(trained_run) / "best.safetensors").write_bytes(b"not a checkpoint")
    at = open_page("pages/classify.py")
    assert not at.exception, at.exception
    assert "could not be loaded" in texts(at.error)


# Classify many ---------------------------------------------------------------------------

def test_a_labelled_zip_gets_accuracy_a_confusion_matrix_and_a_csv(trained_run) -> None:
    files = {f"new/{name}": data for name, data in shape_pngs(4).items()}
    files["new/notes.txt"] = b"not an image"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    at = open_page("pages/classify.py")
    at.file_uploader(key="many_zip").upload("new.zip", buffer.getvalue(), "application/zip")
    at.run()
    at.button(key="many_go").click().run()
    assert not at.exception, at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Images classified"] == "12"
    assert metrics["With a known class folder"] == "12"
    assert metrics["Accuracy"].endswith("%")
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any("Confusion matrix (12 labelled images)" in title for title in titles)
    [csv_button] = [b for b in at.get("download_button") if "CSV" in b.proto.label]
    assert csv_button.proto.label == "Download the predictions (CSV)"


# Export and import -----------------------------------------------------------------------

def test_export_onnx_from_the_page_passes_parity_and_offers_the_file(trained_run) -> None:
    at = open_page("pages/classify.py")
    assert at.get("button_group")[0].value == "onnx"
    at.button(key="export_go").click().run()
    assert not at.exception, at.exception
    assert "Parity passed" in texts(at.success)
    assert (run_folder(trained_run) / "exports" / "first.onnx").is_file()
    assert (run_folder(trained_run) / "exports" / "first.onnx.card.json").is_file()
    labels = [button.proto.label for button in at.get("download_button")]
    assert labels[:2] == ["Model", "Card"]
    exports = Store().get_run(trained_run)["summary"]["exports"]
    assert [entry["parity"]["passed"] for entry in exports.values()] == [True]


def test_a_pickle_is_refused_on_import(studio_home) -> None:
    at = open_page("pages/classify.py")
    at.file_uploader(key="import_weights").upload("model.pth", b"\x80\x04pickle", "x/y")
    at.run()
    assert not at.exception, at.exception
    assert "pickle" in texts(at.error) and "not accepted" in texts(at.error)
    assert at.button(key="import_go").disabled
    assert Store().list_runs() == []


def test_safetensors_and_card_import_as_a_new_run(trained_run, tmp_path: Path) -> None:
    result = export_run(trained_run, "safetensors", tmp_path)
    weights, card = Path(result["path"]), Path(result["card"])
    at = open_page("pages/classify.py")
    at.file_uploader(key="import_weights").upload(weights.name, weights.read_bytes(), "x/y")
    at.file_uploader(key="import_card").upload(card.name, card.read_bytes(), "application/json")
    at.run()
    at.text_input(key="import_name").input("from elsewhere")
    at.button(key="import_go").click().run()
    assert not at.exception, at.exception
    runs = {run["name"]: run for run in Store().list_runs()}
    assert runs["from elsewhere"]["status"] == "completed"
    assert at.selectbox(key="classify_run").value == runs["from elsewhere"]["run_id"]
    assert "Imported from elsewhere" in texts(at.success)


# Train: transfer learning ----------------------------------------------------------------

def test_train_queues_init_from_and_freeze_epochs(trained_run, monkeypatch) -> None:
    at = open_page("pages/train.py")
    assert at.selectbox(key="train_init_from").value == ""  # from scratch
    with pytest.raises(KeyError):
        at.number_input(key="train_freeze_epochs")  # a preset has no backbone to freeze
    at.selectbox(key="train_init_from").set_value(trained_run).run()
    assert "every layer starts from that run" in texts(at.caption)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    queued = next(run for run in Store().list_runs() if run["status"] == "queued")
    assert (queued["config"]["init_from"], queued["config"]["freeze_epochs"]) == (trained_run, 0)


def test_train_offers_frozen_epochs_for_the_pretrained_model(shapes_dataset, monkeypatch) -> None:
    at = open_page("pages/train.py")
    at.button_group(key="train_kind").set_value("Pretrained EfficientNet-Lite").run()
    at.number_input(key="train_freeze_epochs").set_value(2).run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    [run] = Store().list_runs()
    assert run["config"]["model"] == "efficientnet-lite0-imagenet"
    assert run["config"]["freeze_epochs"] == 2


def test_train_offers_the_pretrained_lite2_next_to_lite0(shapes_dataset, monkeypatch) -> None:
    at = open_page("pages/train.py")
    at.button_group(key="train_kind").set_value("Pretrained EfficientNet-Lite").run()
    picker = at.selectbox(key="train_pretrained")
    assert picker.options == ["EfficientNet-Lite0", "EfficientNet-Lite2"]
    picker.set_value("efficientnet-lite2-imagenet").run()
    assert "EfficientNet-Lite2 pretrained on ImageNet" in texts(at.caption)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    [run] = Store().list_runs()
    assert run["config"]["model"] == "efficientnet-lite2-imagenet"


def test_a_newly_chosen_zip_hides_the_previous_result(trained_run) -> None:
    """The previous zip's result stayed on screen under a new zip (issue 17)."""
    def zip_of(seed: int) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in shape_pngs(2, seed=seed).items():
                archive.writestr(f"new/{name}", data)
        return buffer.getvalue()

    at = open_page("pages/classify.py")
    at.file_uploader(key="many_zip").upload("first.zip", zip_of(1), "application/zip")
    at.run()
    at.button(key="many_go").click().run()
    assert "Images classified" in [metric.label for metric in at.metric]
    at.file_uploader(key="many_zip").upload("second.zip", zip_of(2), "application/zip")
    at.run()
    assert "Images classified" not in [metric.label for metric in at.metric]
    at.button(key="many_go").click().run()
    assert "Images classified" in [metric.label for metric in at.metric]
