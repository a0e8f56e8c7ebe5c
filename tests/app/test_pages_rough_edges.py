"""Issue 17's rough edges on the pages (AppTest): latency as a median with its spread, one
download name per model card, the zip tab's icon, the short relabel choice and the original
file path in the cleaned-version list."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.delta_generator import DeltaGenerator
from streamlit.testing.v1 import AppTest

from core.data.dataset import load_dataset
from core.serving.export import export_run
from pages.ui.export import exports_folder
from pages.ui.mistake_marks import REMOVE, short_option

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 60


def open_page(page: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def unescaped(elements) -> str:
    """The elements' text as read (markdown's backslash escapes of user text taken out)."""
    return texts(elements).replace("\\", "")


def png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_latency_shown_is_a_median_of_several_calls_with_its_spread(trained_run) -> None:
    at = open_page("pages/classify.py")
    at.file_uploader(key="classify_files").upload("grey.png", png(), "image/png")
    at.run()
    assert not at.exception, at.exception
    caption = texts(at.caption)
    assert "predicted in" in caption and "median of" in caption and "–" in caption


def test_each_export_s_card_downloads_under_its_own_name(trained_run, monkeypatch) -> None:
    for fmt in ("onnx", "safetensors"):
        export_run(trained_run, fmt, exports_folder(trained_run))
    names: list[str] = []
    original = DeltaGenerator.download_button

    def recording(self, label, data, *args, **kwargs):
        names.append(kwargs.get("file_name"))
        return original(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    open_page("pages/classify.py")
    cards = [name for name in names if name and name.endswith(".card.json")]
    assert sorted(cards) == ["first.onnx.card.json", "first.safetensors.card.json"]


def test_the_zip_tab_shows_an_archive_icon_not_a_folder(studio_home) -> None:
    at = open_page("pages/datasets.py")
    labels = [tab.label for tab in at.tabs]
    assert ":material/archive: Zip file" in labels


def test_the_relabel_choice_is_short_enough_to_be_read() -> None:
    assert short_option("relabel as cat") == "→ cat"
    assert short_option("keep") == "keep" and short_option(REMOVE) == REMOVE


def test_the_cleaned_version_list_names_the_original_file(trained_run) -> None:
    dataset = load_dataset("shapes")
    dataset.items[0].source = "holiday/cats/IMG_0001.png"
    dataset.save()
    at = open_page("pages/mistakes.py", mistakes_run=trained_run,
                   mistake_marks={"shapes": {0: REMOVE, 1: "circle"}})
    [frame] = [f.value for f in at.dataframe if "original file" in f.value.columns]
    shown = list(frame["original file"])
    assert shown == ["holiday/cats/IMG_0001.png", dataset.items[1].source]
    assert not any(name.startswith("images/") for name in shown), "never the internal id"


def test_an_imported_model_shows_its_card_s_metrics_not_empty_epochs(trained_run,
                                                                      tmp_path) -> None:
    from core.serving.model_import import import_model
    from core.store import Store

    store = Store()
    store.update_run(trained_run, test_acc=0.75, best_val_acc=0.8)
    result = export_run(trained_run, "safetensors", tmp_path)
    imported = import_model(Path(result["path"]), Path(result["card"]), "from elsewhere")
    run = store.get_run(imported)
    assert (run["test_acc"], run["best_val_acc"]) == (0.75, 0.8)
    at = open_page("pages/runs.py", run_pick=imported)
    [frame] = [f.value for f in at.dataframe if "epochs" in f.value.columns]
    row = frame[frame["name"] == "from elsewhere"].iloc[0]
    assert row["epochs"] == "imported"
    assert row["test acc"] == 75.0 and row["best val acc"] == 80.0
    metrics = {metric.label: metric for metric in at.metric}
    assert metrics["Test accuracy"].value == "75.0%"
    assert metrics["Best val accuracy"].value == "80.0%"
    assert "None" not in str(metrics["Best val accuracy"].proto.help)


def test_a_run_changed_from_its_recipe_says_modified(shapes_dataset, monkeypatch) -> None:
    from core.runs import queue
    from core.store import Store

    monkeypatch.setattr(queue, "ensure_worker", lambda: False)
    at = open_page("pages/train.py")
    at.button(key="recipe_cpu-quick").click().run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    at.switch_page("pages/train.py").run()
    at.button(key="recipe_cpu-quick").click().run()
    at.number_input(key="train_epochs").set_value(2)
    at.number_input(key="train_lr").set_value(0.0123).run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    runs = sorted(Store().list_runs(), key=lambda run: run["created_at"])
    as_is, changed = (run["config"] for run in runs)
    assert as_is["recipe"] == changed["recipe"] == "cpu-quick"
    assert "recipe_changed" not in as_is["extra"]
    assert changed["extra"]["recipe_changed"] == ["epochs", "lr"]
    at = open_page("pages/runs.py", run_pick=runs[1]["run_id"])
    assert "recipe cpu-quick (modified: epochs, lr)" in unescaped(at.caption)
    assert "**Recipe:** cpu-quick (modified: epochs, lr)" in unescaped(at.markdown)
    at = open_page("pages/runs.py", run_pick=runs[0]["run_id"])
    assert "recipe cpu-quick" in unescaped(at.caption)
    assert "modified" not in unescaped(at.caption)


def test_a_renamed_run_s_card_and_config_carry_the_new_name(trained_run) -> None:
    import json

    from core.runs.card import clone_config
    from core.runs.record import run_folder
    from core.store import Store

    at = open_page("pages/runs.py")
    at.text_input(key=f"rename_{trained_run}").input("my best run")
    at.button(key="run_rename_save").click().run()
    assert not at.exception, at.exception
    run = Store().get_run(trained_run)
    assert run["name"] == run["config"]["name"] == "my best run"
    assert json.loads((run_folder(trained_run) / "config.json").read_text())["name"] == \
        "my best run"
    [card_config] = [json.loads(element.proto.body) for element in at.json
                     if "name" in json.loads(element.proto.body)]
    assert card_config["name"] == "my best run"
    assert at.subheader[0].value == "my best run"
    assert clone_config(run).name is None  # a clone still gets its own name
