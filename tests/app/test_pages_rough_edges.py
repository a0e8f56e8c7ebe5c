"""Issue 17's rough edges on the pages (AppTest): latency as a median with its spread, one
download name per model card, the zip tab's icon, the short relabel choice and the original
file path in the cleaned-version list."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from app_pages import APP, open_page, texts
from PIL import Image
from streamlit.delta_generator import DeltaGenerator
from streamlit.testing.v1 import AppTest

from core.data.dataset import load_dataset
from core.serving.export import export_run
from pages.ui.export import exports_folder
from pages.ui.mistake_marks import REMOVE, short_option


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
    import json

    folder = exports_folder(trained_run)  # each keeps its own card, with its own format
    for fmt in ("onnx", "safetensors"):
        assert json.loads((folder / f"first.{fmt}.card.json").read_text())["format"] == fmt


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
    from core.store import Store

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


def column_widths(element) -> dict[str, object]:
    """A table's configured column widths: {column: width}."""
    import json

    return {name: config.get("width") for name, config in
            json.loads(element.proto.columns or "{}").items() if not config.get("hidden")}


def test_the_runs_table_fits_the_page_and_shows_a_dash_for_what_is_missing(trained_run) -> None:
    import json

    from core.config import TrainConfig
    from core.runs.record import new_run
    from core.store import Store

    new_run(TrainConfig(data="shapes", model="tiny-cnn", name="waiting"), Store())
    at = open_page("pages/runs.py")
    [element] = [f for f in at.dataframe if f.key == "runs_table"]
    assert element.proto.placeholder == "–"
    widths = column_widths(element)
    assert set(widths) >= {"name", "test acc", "created", "duration (s)"}
    assert all(isinstance(width, int) for width in widths.values())
    assert sum(widths.values()) <= 800, "the whole table fits a 1280 px window's page"
    assert element.value["test acc"].isna().any(), "the queued run has none yet"
    formats = {name: config.get("type_config", {}).get("format")
               for name, config in json.loads(element.proto.columns).items()}
    assert formats["test acc"] == "%.1f %%" and formats["created"] == "YYYY-MM-DD HH:mm"


def test_every_table_of_the_pages_says_missing_as_a_dash() -> None:
    """st.dataframe writes "None" for a missing value unless given a placeholder."""
    import ast

    root = Path(APP).parent / "pages"
    bare = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "dataframe" \
                    and "placeholder" not in {keyword.arg for keyword in node.keywords}:
                bare.append(f"{path.name}:{node.lineno}")
    assert not bare, bare


def copy_run(source: str, name: str, test_acc: float) -> str:
    """A second completed run with the same model files and another test accuracy."""
    import shutil

    from core.runs.record import run_folder
    from core.store import Store

    store = Store()
    original = store.get_run(source)
    run_id = store.create_run(original["config"] | {"name": name}, name=name,
                              status="completed")
    shutil.copytree(run_folder(source), run_folder(run_id), dirs_exist_ok=True)
    store.update_run(run_id, test_acc=test_acc, best_val_acc=test_acc,
                     summary=original["summary"], epoch=original["epoch"])
    return run_id


def test_compare_s_tables_set_every_column_s_width(trained_run) -> None:
    other = copy_run(trained_run, "second", 0.5)
    at = open_page("pages/compare.py", compare_pick=[trained_run, other])
    [results] = [f for f in at.dataframe if "test_acc" in f.value.columns]
    [per_class] = [f for f in at.dataframe if f.value.index.name == "class"]
    assert results.proto.placeholder == "–"
    widths = column_widths(results)
    shown = list(results.proto.column_order)
    assert "test_acc" in shown and all(widths.get(name) for name in shown)
    assert sum(widths[name] for name in shown) <= 800
    assert per_class.proto.placeholder == "–" and all(column_widths(per_class).values())


def twenty_class_summary(summary: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    classes = [f"class number {i:02d}" for i in range(20)]  # long, alike but for the end
    matrix = rng.integers(0, 5, (20, 20)) + np.eye(20, dtype=int) * 40
    return summary | {"confusion": matrix.tolist(),
                      "per_class": [{"class": name, "support": int(row.sum()), "accuracy": 0.8,
                                     "precision": 0.8, "f1": 0.8}
                                    for name, row in zip(classes, matrix, strict=True)]}


def test_compare_s_confusion_matrices_stay_legible_at_twenty_classes(trained_run) -> None:
    import json

    from core.store import Store
    from pages.ui.charts import matrices_per_row, short_labels

    store = Store()
    summary = store.get_run(trained_run)["summary"]
    store.update_run(trained_run, summary=twenty_class_summary(summary, 0))
    other = copy_run(trained_run, "second", 0.5)
    store.update_run(other, summary=twenty_class_summary(summary, 1))
    at = open_page("pages/compare.py", compare_pick=[trained_run, other])
    heatmaps = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    heatmaps = [figure for figure in heatmaps if figure["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == 3, "both runs' matrices and their difference"
    for figure in heatmaps:
        layout = figure["layout"]
        for axis in ("xaxis", "yaxis"):
            assert len(layout[axis]["tickvals"]) == 20, "every label, none skipped"
            assert layout[axis]["tickfont"]["size"] >= 9
        assert layout["yaxis"]["ticktext"][3] == "class number 03"  # cut, they would be alike
        assert figure["data"][0]["texttemplate"], "the numbers in the cells"
        assert layout["height"] >= 36 * 20
    assert matrices_per_row(20) == 1 and matrices_per_row(10) == 2 and matrices_per_row(3) == 3
    assert short_labels(["a rather long class name", "short"]) == ["a rather long…", "short"]


def test_the_sweep_form_has_train_s_augmentation_settings_for_every_run(shapes_dataset,
                                                                        monkeypatch) -> None:
    from core.config import AUGMENTATION, settings
    from core.store import Store
    from pages.ui.settings_form import group_settings

    train = open_page("pages/train.py")
    at = open_page("pages/sweeps.py")
    names = group_settings(AUGMENTATION)
    assert set(names) >= {"resize", "flip", "pad_crop", "jitter"}
    def find(app: AppTest, key: str):
        return next(element for kind in ("selectbox", "slider", "number_input", "checkbox")
                    for element in getattr(app, kind) if element.key == key)

    for name in names:
        swept, same = find(at, f"sweep_{name}"), find(train, f"train_{name}")
        assert swept.type == same.type, name
        assert swept.label == same.label == settings()[name].label, name
        assert getattr(swept, "options", None) == getattr(same, "options", None), name
    at.multiselect(key="sweep_models").set_value(["tiny-cnn", "small-cnn"])
    at.selectbox(key="sweep_flip").set_value("off")
    at.selectbox(key="sweep_resize").set_value("pad")
    at.slider(key="sweep_jitter").set_value(0.1).run()
    at.button(key="sweep_go").click().run()
    assert not at.exception, at.exception
    runs = Store().list_runs()
    assert len(runs) == 2
    for run in runs:
        config = run["config"]
        assert (config["flip"], config["resize"], config["jitter"]) == ("off", "pad", 0.1)


def block_path(at: AppTest, label_start: str) -> tuple[int, ...]:
    """Where the expander whose label starts so sits in the page's tree: the browser keeps an
    expander open across reruns only while it stays at the same place."""
    def walk(node, path):
        for index, child in getattr(node, "children", {}).items():
            if getattr(child, "type", None) == "expander" and \
                    child.label.startswith(label_start):
                yield (*path, index)
            yield from walk(child, (*path, index))

    [found] = list(walk(at._tree, ()))
    return found


def test_more_settings_stays_in_place_after_a_recipe_or_a_clone(trained_run) -> None:
    """It folded shut on the first change inside it once the recipe's or clone's notice went
    away: everything below the notice had moved, so the browser made a new, closed one."""
    more = "More settings"
    at = open_page("pages/train.py")
    before = block_path(at, more)
    at.button(key="recipe_cpu-quick").click().run()
    assert "recipe" in texts(at.success)
    assert block_path(at, more) == before
    at.number_input(key="train_label_smoothing").set_value(0.15).run()  # a change inside it
    assert not at.success, "the notice is gone"
    assert block_path(at, more) == before
    at = open_page("pages/runs.py")
    at.button(key="run_clone").click().run()
    assert "copy of the run's settings" in texts(at.info)
    cloned = block_path(at, more)
    at.number_input(key="train_label_smoothing").set_value(0.15)
    at.switch_page("pages/train.py").run()  # AppTest reruns the page it was told, not the switch
    assert not at.info or "copy of the run's settings" not in texts(at.info)
    assert block_path(at, more) == cloned == before


def test_use_the_suggested_rate_writes_two_significant_digits(shapes_dataset) -> None:
    found = {"lrs": [1e-4, 1e-3, 1e-2], "losses": [2.0, 1.0, 3.0],
             "suggestion": 0.0018988078244652569, "seconds": 1.0}
    at = open_page("pages/train.py", lr_find_result=found)
    at.button(key="lr_find_use").click().run()
    assert not at.exception, at.exception
    assert at.session_state["train_lr"] == 0.0019
    assert at.number_input(key="train_lr").value == 0.0019
