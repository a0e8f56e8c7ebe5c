"""The dashboard's pages under Streamlit's AppTest: every page on an empty workspace and with
data, the import / train / runs / classify flows, and the pure helpers behind the live charts.

Each test has its own workspace (conftest's `studio_home`); data is made through core.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from upload_files import png, zip_bytes

from core.config import TrainConfig, settings
from core.data.dataset import list_datasets
from core.runs import imports
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store
from core.workspace import this_host
from pages.ui.charts import MAX_POINTS, thin
from pages.ui.layer_editor import STARTER, layer_to_row, row_to_layer, rows_to_spec
from pages.ui.metric_log import MetricLog
from pages.ui.settings_form import group_settings
from pages.ui.train_form import MORE, OWN_WIDGETS

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGES = ["pages/home.py", "pages/datasets.py", "pages/train.py", "pages/runs.py",
         "pages/compare.py", "pages/classify.py"]
TIMEOUT = 60  # the first run imports torch and timm


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page != "pages/home.py":
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


@pytest.fixture
def inline_imports(monkeypatch):
    """Imports queued by the page run here, when the test says (no worker process)."""
    monkeypatch.setattr(imports, "ensure_import_worker", lambda: False)


def finish_imports(at: AppTest) -> AppTest:
    """Run the imports the page queued, as the background worker would, and redraw."""
    assert imports.work_imports(idle_exit_s=0, poll_s=0) >= 0
    return at.run()


# Every page ---------------------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_workspace(studio_home, page: str) -> None:
    at = open_page(page)
    assert at.title, "every page has a title"
    if page != "pages/home.py":
        assert at.info, "an empty page says what to do first"


def test_an_unreachable_database_gets_a_message_saying_what_to_check(
        studio_home, monkeypatch) -> None:
    monkeypatch.setenv("CNN_STUDIO_DB", "postgresql://studio:s3cret-pw@127.0.0.1:1/studio")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    message = texts(at.error)
    assert "Cannot reach the store's database" in message and "CNN\\_STUDIO\\_DB" in message
    assert "s3cret-pw" not in message


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_a_dataset_and_a_trained_run(trained_run, page: str) -> None:
    at = open_page(page)
    assert not at.error, texts(at.error)


def test_home_counts_the_workspace_and_names_the_device(trained_run) -> None:
    at = open_page("pages/home.py")
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Datasets"] == "1"
    assert metrics["Runs"] == "1"
    assert metrics["Device"]


# Datasets -----------------------------------------------------------------------------------

def test_zip_upload_imports_and_lists_the_dropped_files(studio_home, inline_imports) -> None:
    files = {f"pets/{cls}/{i}.png": png((40 * i, 100, 200 if cls == "cat" else 20))
             for cls in ("cat", "dog") for i in range(6)}
    files["pets/cat/notes.txt"] = b"not an image"
    at = open_page("pages/datasets.py")
    at.file_uploader(key="zip_upload").upload("pets.zip", zip_bytes(files), "application/zip")
    at.run()
    at.text_input(key="zip_name").input("pets")
    at.button(key="zip_go").click().run()
    assert not at.exception, at.exception
    assert list_datasets() == [], "queued for the background worker, not imported by the page"
    assert "Import of pets is waiting" in texts(at.info)
    finish_imports(at)
    assert list_datasets() == ["pets"]
    assert "Imported pets: 12 images in 2 classes; dropped 1 file" in texts(at.success)
    assert at.selectbox(key="dataset_pick").value == "pets"


def test_a_running_import_can_be_cancelled_and_says_so(studio_home, inline_imports) -> None:
    files = {f"{cls}/{i}.png": png((9 * i, 60, 90 if cls == "a" else 200))
             for cls in ("a", "b") for i in range(6)}
    imports.submit_zip(io.BytesIO(zip_bytes(files)), "letters")
    job = Store().claim_next_import(worker_pid=os.getpid(), worker_host=this_host())
    at = open_page("pages/datasets.py")
    assert "Importing letters" in at.get("progress")[0].proto.text
    at.button(key=f"import_cancel_{job['job_id']}").click().run()
    imports.run_import(job, Store())  # the worker sees the request at its next report
    at.run()
    assert "The import of letters was cancelled; no dataset was made." in texts(at.warning)
    assert list_datasets() == []
    at.button(key=f"import_close_{job['job_id']}").click().run()
    assert "cancelled" not in texts(at.warning)


def test_a_failed_import_says_why_on_the_datasets_page(studio_home, inline_imports) -> None:
    one_class = {f"cat/{i}.png": png((i, 2, 3)) for i in range(6)}
    imports.submit_zip(io.BytesIO(zip_bytes(one_class)), "cats")
    at = finish_imports(open_page("pages/datasets.py"))
    assert "The import of cats did not finish" in texts(at.error)


def test_a_file_that_is_not_a_zip_gives_an_error_not_a_traceback(studio_home,
                                                                 inline_imports) -> None:
    at = open_page("pages/datasets.py")
    at.file_uploader(key="zip_upload").upload("broken.zip", b"definitely not a zip")
    at.run()
    at.button(key="zip_go").click().run()
    assert not at.exception, at.exception
    assert "Could not import the dataset" in texts(at.error)
    assert list_datasets() == []


def test_a_folder_upload_takes_its_classes_from_the_sub_folders(studio_home,
                                                                inline_imports) -> None:
    at = open_page("pages/datasets.py")
    uploader = at.file_uploader(key="folder_upload")
    for cls, colour in (("apple", (200, 30, 30)), ("pear", (30, 200, 30))):
        for i in range(4):
            uploader.upload(f"fruit/{cls}/{i}.png", png(colour), "image/png")
    at.run()
    at.text_input(key="folder_name").input("fruit")
    at.button(key="folder_go").click().run()
    finish_imports(at)
    assert not at.exception, at.exception
    assert list_datasets() == ["fruit"]
    assert "2 classes" in texts(at.success)


def test_class_by_class_builds_a_dataset(studio_home, inline_imports) -> None:
    at = open_page("pages/datasets.py")
    for class_id, (label, colour) in enumerate([("red", (220, 20, 20)), ("blue", (20, 20, 220))]):
        at.text_input(key=f"tm_name_{class_id}").input(label)
        uploader = at.file_uploader(key=f"tm_files_{class_id}")
        for i in range(5):
            uploader.upload(f"{label}{i}.png", png(colour), "image/png")
    at.run()
    at.text_input(key="tm_dataset_name").input("colours")
    at.button(key="tm_go").click().run()
    finish_imports(at)
    assert not at.exception, at.exception
    assert list_datasets() == ["colours"]


def test_class_by_class_with_one_class_asks_for_a_second(studio_home) -> None:
    at = open_page("pages/datasets.py")
    at.text_input(key="tm_name_0").input("only")
    at.file_uploader(key="tm_files_0").upload("a.png", png((1, 2, 3)), "image/png")
    at.run()
    at.button(key="tm_go").click().run()
    assert "at least two classes" in texts(at.error)
    assert list_datasets() == []


def test_a_builtin_dataset_is_one_click(studio_home, inline_imports) -> None:
    at = open_page("pages/datasets.py")
    at.button(key="demo_shapes").click().run()
    finish_imports(at)
    assert not at.exception, at.exception
    assert list_datasets() == ["shapes"]
    assert at.button(key="demo_shapes").disabled


def test_deleting_a_dataset_asks_first(shapes_dataset) -> None:
    at = open_page("pages/datasets.py")
    at.button(key="dataset_delete").click().run()
    assert list_datasets() == ["shapes"], "nothing is deleted before the confirmation"
    assert "cannot be undone" in texts(at.warning)
    at.button(key="dataset_delete_yes").click().run()
    assert not at.exception, at.exception
    assert list_datasets() == []


# Train --------------------------------------------------------------------------------------

def test_start_queues_the_run_and_opens_it(shapes_dataset, monkeypatch) -> None:
    at = open_page("pages/train.py")
    at.number_input(key="train_epochs").set_value(2)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    [run] = Store().list_runs()
    assert (run["status"], run["model"], run["config"]["epochs"]) == ("queued", "tiny-cnn", 2)
    assert at.session_state["run_pick"] == run["run_id"]
    assert "Waiting for the worker" in at.get("progress")[0].proto.text


def test_custom_layers_show_the_parameter_count(shapes_dataset) -> None:
    at = open_page("pages/train.py")
    at.button_group(key="train_kind").set_value("Custom layers").run()
    assert not at.exception, at.exception
    params = {metric.label: metric.value for metric in at.metric}["Parameters"]
    # conv 3→32, conv 32→64, dense 8·8·64→128, head 128→3
    expected = (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (8 * 8 * 64 * 128 + 128) + (128 * 3 + 3)
    assert params == f"{expected:,}"


def test_the_train_form_is_made_from_the_config_schema(shapes_dataset) -> None:
    """Every setting under "More settings" has its widget, labelled and bounded as the schema
    says: the form writes no range or label of its own."""
    at = open_page("pages/train.py")
    widgets = {element.key: element for kind in ("number_input", "slider", "checkbox",
                                                  "selectbox")
               for element in getattr(at, kind)}
    for group in MORE:
        for name in group_settings(group, exclude=OWN_WIDGETS):
            meta, widget = settings()[name], widgets[f"train_{name}"]
            assert widget.label == meta.label
            if widget.type == "number_input":
                assert (widget.min, widget.max) == (meta.low, meta.high), name
            if widget.type == "selectbox":
                assert list(widget.options) == [str(choice) for choice in meta.choices], name


def test_a_custom_network_is_queued_with_its_layers(shapes_dataset, monkeypatch) -> None:
    at = open_page("pages/train.py")
    at.button_group(key="train_kind").set_value("Custom layers").run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    [run] = Store().list_runs()
    assert run["config"]["extra"]["spec"] == rows_to_spec(STARTER)


def test_layer_rows_become_a_spec_and_back() -> None:
    spec = rows_to_spec(STARTER)
    assert [layer["type"] for layer in spec["layers"]] == ["conv", "pool", "conv", "pool", "dense"]
    assert spec["layers"][0] == {"type": "conv", "filters": 32, "kernel": 3, "stride": 1,
                                 "activation": "relu"}
    again = rows_to_spec([layer_to_row(layer) for layer in spec["layers"]])
    assert again == spec
    assert row_to_layer({"layer": None}) is None
    assert row_to_layer({"layer": "dropout", "rate": float("nan")}) == {"type": "dropout",
                                                                       "rate": 0.5}


# Runs ---------------------------------------------------------------------------------------

def test_a_finished_run_shows_its_result_and_curves(trained_run) -> None:
    at = open_page("pages/runs.py")
    labels = [metric.label for metric in at.metric]
    assert "Test accuracy" in labels
    assert len(at.get("plotly_chart")) >= 4  # loss, accuracy, lr, throughput (+ confusion)
    assert at.session_state["run_pick"] == trained_run


def test_a_finished_run_shows_its_calibration_and_reliability_diagram(trained_run) -> None:
    at = open_page("pages/runs.py")
    record = Store().get_run(trained_run)["summary"]["calibration"]
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert f"Temperature **{record['temperature']:.3f}**" in shown
    assert "None of the classes I know" in shown and "of validation images answered" in shown
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    [figure] = [f for f in charts if f["layout"]["title"]["text"] == "Reliability (test split)"]
    assert [trace["name"] for trace in figure["data"]] == ["calibrated", "before",
                                                           "after (temperature)"]


def accuracy_points(at: AppTest) -> int:
    for chart in at.get("plotly_chart"):
        figure = json.loads(chart.proto.spec)
        if "Accuracy" in figure["layout"]["title"]["text"]:
            return len(next(t for t in figure["data"] if t["name"] == "validation")["x"])
    raise AssertionError("no accuracy chart")


def test_a_running_run_is_drawn_live_from_the_new_rows(shapes_dataset) -> None:
    store = Store()
    run_id = new_run(TrainConfig(data="shapes", epochs=5), store, status="running")
    store.update_run(run_id, started_at=time.time() - 5, heartbeat_at=time.time())
    steps = [(s, s / 10, name, 1.0) for s in range(1, 11) for name in ("loss", "lr", "gpu_mem_gb")]
    store.add_metrics(run_id, [*steps, (10, 1, "epoch/val_acc", 0.5)])
    at = open_page("pages/runs.py")
    assert accuracy_points(at) == 1
    assert "GPU memory" in texts(at.caption)
    store.add_metrics(run_id, [(20, 2, "epoch/val_acc", 0.7), (20, 2.0, "loss", 0.8)])
    store.update_run(run_id, heartbeat_at=time.time())
    at.run()
    assert not at.exception, at.exception
    assert accuracy_points(at) == 2


def test_a_running_run_shows_its_step_and_time_left_inside_the_first_epoch(
        shapes_dataset) -> None:
    store = Store()
    run_id = new_run(TrainConfig(data="shapes", epochs=5), store, status="running")
    store.update_run(run_id, started_at=time.time() - 5, heartbeat_at=time.time())
    store.add_metrics(run_id, [(0, 0.0, "steps_per_epoch", 50.0)])
    time.sleep(0.05)  # the first step row lands after the start row
    store.add_metrics(run_id, [(10, 0.2, "loss", 1.0)])
    text = open_page("pages/runs.py").get("progress")[0].proto.text
    assert text.startswith("Epoch 0.2 of 5 · step 10 of 250 · about "), text


def test_a_failed_run_says_why(trained_run) -> None:
    Store().update_run(trained_run, status="failed", error="The device ran out of memory.")
    at = open_page("pages/runs.py")
    assert "ran out of memory" in texts(at.error)
    assert at.button(key="run_resume")


def test_rename_changes_the_name_shown(trained_run) -> None:
    at = open_page("pages/runs.py")
    at.text_input(key=f"rename_{trained_run}").input("my best run")
    at.button(key="run_rename_save").click().run()
    assert not at.exception, at.exception
    assert Store().get_run(trained_run)["name"] == "my best run"
    assert "my best run" in [header.value for header in at.subheader]


def test_a_run_name_is_shown_as_typed_not_as_markup(trained_run) -> None:
    Store().update_run(trained_run, name="**big** <img src=x> $x$ :material/home:")
    at = open_page("pages/runs.py")
    assert at.subheader[0].value == ("\\*\\*big\\*\\* \\<img src=x\\> \\$x\\$ "
                                     "\\:\u200bmaterial/home\\:")


def test_deleting_a_run_asks_first(trained_run) -> None:
    at = open_page("pages/runs.py")
    at.button(key="run_delete").click().run()
    assert Store().get_run(trained_run) is not None
    at.button(key="run_delete_yes").click().run()
    assert not at.exception, at.exception
    assert Store().get_run(trained_run) is None


def test_clone_fills_the_train_form(trained_run) -> None:
    Store().update_run(trained_run, config=TrainConfig(  # pad_crop 12: beyond the form's range
        data="shapes", model="resnet9-small", epochs=7, optimizer="sgd", lr=0.02,
        pad_crop=12).to_dict())
    at = open_page("pages/runs.py")
    at.button(key="run_clone").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="train_epochs").value == 7
    assert at.selectbox(key="train_preset").value == "resnet9-small"
    assert at.selectbox(key="train_optimizer").value == "sgd"
    assert at.number_input(key="train_lr").value == pytest.approx(0.02)
    assert at.number_input(key="train_pad_crop").value == 8


def test_suggest_fills_the_learning_rate_in_one_click(shapes_dataset, monkeypatch) -> None:
    import pages.ui.train_form

    def range_test(config, **options):
        assert config.data == "shapes" and options["budget_seconds"] > 0
        return {"lrs": [1e-4, 1e-3], "losses": [2.0, 1.0], "suggestion": 0.0031234,
                "seconds": 0.4}

    monkeypatch.setattr(pages.ui.train_form, "lr_find", range_test)
    at = open_page("pages/train.py")
    at.button(key="train_lr_suggest").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="train_lr").value == pytest.approx(0.0031)


def test_the_train_page_lists_the_model_layer_by_layer(shapes_dataset) -> None:
    at = open_page("pages/train.py")
    table = next(frame.value for frame in at.dataframe if "FLOPs" in frame.value.columns)
    assert list(table.columns) == ["layer", "type", "output shape", "params", "FLOPs"]
    assert table["type"].iloc[0] == "Conv2d" and table["output shape"].iloc[0] == "32×32×32"
    assert table["params"].sum() == 544_195  # tiny-cnn for 3-channel 32 px, 3 classes


def test_a_recipe_fills_the_train_form_in_one_click(shapes_dataset, monkeypatch) -> None:
    at = open_page("pages/train.py")
    at.button(key="recipe_speed-run").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_preset").value == "resnet9"
    assert at.selectbox(key="train_optimizer").value == "sgd"
    assert at.number_input(key="train_batch_size").value == 16  # 240 images: a small batch
    assert at.number_input(key="train_label_smoothing").value == pytest.approx(0.2)
    assert "Speed run" in texts(at.success)
    at.number_input(key="train_epochs").set_value(3)  # still editable
    at.checkbox(key="train_auto_batch").check()
    at.checkbox(key="train_ema").check()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    [run] = Store().list_runs()
    config = run["config"]
    assert (config["model"], config["epochs"], config["recipe"]) == ("resnet9", 3, "speed-run")
    assert config["tta_flip"] and config["optimizer"] == "sgd"
    assert config["batch_size"] == 0 and config["ema_decay"] == pytest.approx(0.999)


def test_resume_queues_a_stopped_run_again(trained_run, monkeypatch) -> None:
    Store().update_run(trained_run, status="stopped")
    at = open_page("pages/runs.py")
    at.button(key="run_resume").click().run()
    assert not at.exception, at.exception
    assert Store().get_run(trained_run)["status"] == "queued"


# Compare and classify -----------------------------------------------------------------------

def test_compare_overlays_two_runs(trained_run) -> None:
    store = Store()
    second = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=1, lr=0.01), store,
                     status="running")
    execute_run(second, store)
    at = open_page("pages/compare.py")
    assert sorted(at.multiselect(key="compare_runs").value) == sorted([trained_run, second])
    assert not at.exception, at.exception
    assert at.get("plotly_chart")
    assert "Settings that differ" in texts(at.markdown)


def shape_png(size: int = 32, seed: int = 11) -> bytes:
    """A new image of the `shapes` kind (not a training image), as a PNG of size×size."""
    from PIL import Image

    from core.data.demo import shapes_arrays

    image = Image.fromarray(shapes_arrays(per_class=1, seed=seed)["all"][0][0])
    buffer = io.BytesIO()
    image.resize((size, size)).save(buffer, "PNG")
    return buffer.getvalue()


def test_classify_shows_the_top_classes_of_an_upload(trained_run) -> None:
    at = open_page("pages/classify.py")
    uploader = at.file_uploader(key="classify_files")  # shapes: not "none of the classes"
    uploader.upload("shape.png", shape_png(), "image/png")
    uploader.upload("big.png", shape_png(size=300), "image/png")
    at.run()
    assert not at.exception, at.exception
    headings = [m.value.removeprefix("### ") for m in at.markdown if m.value.startswith("### ")]
    assert len(headings) == 2
    assert set(headings) <= {"circle", "square", "triangle"}


def test_classify_can_show_where_the_model_looked(trained_run) -> None:
    at = open_page("pages/classify.py")
    at.toggle(key="classify_cam").set_value(True)
    at.file_uploader(key="classify_files").upload("red.png", png((230, 30, 30)), "image/png")
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 2  # the upload and its heat map


def test_classify_says_what_is_wrong_with_a_file_that_is_not_an_image(trained_run) -> None:
    at = open_page("pages/classify.py")
    at.file_uploader(key="classify_files").upload("fake.png", b"\x89PNG but not really")
    at.run()
    assert not at.exception, at.exception
    assert r"fake\.png" in texts(at.error) and "Upload a PNG" in texts(at.error)


# The helpers behind the live charts ---------------------------------------------------------

def test_thin_caps_points_and_keeps_both_ends() -> None:
    xs = list(range(10_000))
    ys = [x * 2 for x in xs]
    tx, ty = thin(xs, ys)
    assert len(tx) <= MAX_POINTS and tx[0] == 0 and tx[-1] == 9_999
    assert ty == [x * 2 for x in tx]
    assert thin([1, 2, 3], [4, 5, 6]) == ([1, 2, 3], [4, 5, 6])


def test_polling_from_the_last_step_drawn_never_duplicates(studio_home) -> None:
    store = Store()
    run_id = store.create_run(TrainConfig(data="x").to_dict())
    log = MetricLog()
    store.add_metrics(run_id, [(1, 0.1, "loss", 2.0), (2, 0.2, "loss", 1.5)])
    log.add(store.metrics(run_id, min_step=log.last_step))
    # the epoch's rows land later at the epoch's last step, which was already drawn
    store.add_metrics(run_id, [(2, 1.0, "epoch/val_acc", 0.5), (3, 1.1, "loss", 1.2)])
    fetched = store.metrics(run_id, min_step=log.last_step)
    assert {row["step"] for row in fetched} == {2, 3}, "only rows from the last step drawn"
    log.add(fetched)
    assert log.series("loss") == ([1.0, 2.0, 3.0], [2.0, 1.5, 1.2])
    assert log.series("epoch/val_acc", "epoch") == ([1.0], [0.5])
    assert log.epochs_done() == 1
    assert log.last_step == 3


def test_metric_log_reports_progress_and_speed() -> None:
    log = MetricLog()
    log.add([{"step": s, "name": "loss", "epoch": s / 10, "value": 1.0, "time": 100.0 + s}
             for s in range(1, 11)])
    assert log.progress_epoch() == pytest.approx(1.0)
    assert log.epochs_per_second(since=0.0) == pytest.approx(0.1)
    assert log.latest("loss") == 1.0 and log.latest("lr") is None




def test_charts_stay_small_for_long_runs() -> None:
    from pages.ui.charts import Trace, line_figure

    xs = np.arange(50_000).tolist()
    fig = line_figure([Trace("loss", xs, xs)], "Loss", "step", "loss")
    assert len(fig.data[0].x) <= MAX_POINTS
