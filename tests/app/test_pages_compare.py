"""Compare, Sweep, Error analysis and the run card under Streamlit's AppTest.

Four real one- or two-epoch runs on the `shapes` demo (three architectures and a second
learning rate) are trained once for the module, in its own workspace; tests that queue runs
use a fresh workspace (conftest's `shapes_dataset`). No worker process is ever started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from app_pages import open_page, texts
from streamlit.testing.v1 import AppTest

from core.analysis.compare import run_colors
from core.analysis.error_analysis import cell_images, validation_predictions
from core.analysis.paired import compare_runs
from core.config import TrainConfig
from core.data.dataset import list_datasets, load_dataset
from core.runs.execute import execute_run
from core.runs.record import delete_run, new_run
from core.store import Store
from pages.ui.mistake_marks import mark_key_for

RUNS = [("tiny-cnn", 2, None), ("small-cnn", 1, None), ("resnet9-small", 1, None),
        ("tiny-cnn", 1, 0.01)]  # (model, epochs, lr)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """name → run id of four finished runs on `shapes`, in a workspace of this module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNN_STUDIO_HOME", str(tmp_path_factory.mktemp("compare") / "workspace"))
        patch.delenv("CNN_STUDIO_DB", raising=False)
        from core.data.catalog import add_demo

        add_demo("shapes", "shapes")
        store, ids = Store(), {}
        for model, epochs, lr in RUNS:
            name = f"{model}-lr{lr}" if lr else model
            run_id = new_run(TrainConfig(data="shapes", model=model, epochs=epochs, lr=lr,
                                         name=name), store, status="running")
            execute_run(run_id, store)
            ids[name] = run_id
        yield ids


def figures(at: AppTest) -> dict[str, dict]:
    """Plotly figures by title (untitled ones by key)."""
    found = {}
    for chart in at.get("plotly_chart"):
        figure = json.loads(chart.proto.spec)
        title = (figure["layout"].get("title") or {}).get("text") or chart.proto.id
        found[title] = figure
    return found


def table(at: AppTest, column: str):
    """The first st.dataframe with this column (or index name): plain tables carry no key."""
    for frame in at.dataframe:
        value = frame.value
        if column in value.columns or value.index.name == column:
            return value
    raise AssertionError(f"no table with {column!r}")


def compare(trained: dict[str, str], *names: str) -> AppTest:
    return open_page("pages/compare.py", compare_pick=[trained[name] for name in names])


ARCHITECTURES = ("tiny-cnn", "small-cnn", "resnet9-small")


# Compare ------------------------------------------------------------------------------------

def test_compare_answers_which_is_most_accurate_fastest_and_what_each_confuses(trained) -> None:
    at = compare(trained, *ARCHITECTURES)
    runs = [Store().get_run(trained[name]) for name in ARCHITECTURES]
    best = max(runs, key=lambda run: run["test_acc"])
    fastest = max(runs, key=lambda run: run["summary"]["train_images_per_s"])
    glance = texts(at.markdown).replace("\\-", "-")
    runner = max((run for run in runs if run is not best), key=lambda run: run["test_acc"])
    paired = compare_runs(runner["run_id"], best["run_id"])
    if paired["better"]:  # named better only when McNemar's test says the difference is real
        assert f"**Most accurate:** {best['name']} — " in glance and "better than" in glance
    else:
        assert f"**Most accurate:** no clear winner — {best['name']}" in glance
        assert "differ within noise" in glance
    assert f"**Fastest to train:** {fastest['name']}" in glance.replace("\\-", "-")
    assert glance.count("confuses most") >= 3
    assert "**Settings that differ:** model, epochs" in glance
    assert "**Settings that differ**" in glance
    config = table(at, "key")
    assert "model" in config.index and "seed" not in config.index  # differences only
    results = table(at, "latency_p50_ms")
    assert list(results["name"]) == list(ARCHITECTURES)


def test_what_changed_shows_fixed_broken_and_both_wrong_with_the_p_value(trained) -> None:
    at = compare(trained, "tiny-cnn", "small-cnn")
    assert "What changed, image by image" in texts(at.subheader)
    paired = compare_runs(trained["tiny-cnn"], trained["small-cnn"])
    verdicts = (texts(at.success) + texts(at.info)).replace("\\", "")  # markdown escapes
    assert paired["verdict"] in verdicts
    labels = [tab.label for tab in at.tabs]
    for kind, title in (("fixed", "Fixed"), ("broken", "Broken"), ("both_wrong", "Both wrong")):
        assert any(label.startswith(title) and label.endswith(f"· {paired['counts'][kind]}")
                   for label in labels), labels
    drawn = min(24, paired["counts"]["fixed"]) + min(24, paired["counts"]["broken"]) \
        + min(24, paired["counts"]["both_wrong"])
    assert len(at.get("image")) >= drawn > 0  # every tab's gallery is drawn (swatches aside)


def test_curves_overlay_each_run_in_its_own_colour_with_a_best_epoch_marker(trained) -> None:
    at = compare(trained, *ARCHITECTURES)
    shown = figures(at)
    assert {"Validation accuracy", "Validation loss", "Train accuracy (per epoch)",
            "Train loss (per step)"} <= set(shown)
    colours = run_colors(trained[name] for name in ARCHITECTURES)
    by_name = {name: colours[trained[name]] for name in ARCHITECTURES}
    for title in ("Validation accuracy", "Per-class accuracy (recall) (test split)"):
        named = {t["name"]: t["marker"]["color"] for t in shown[title]["data"] if t.get("name")}
        assert named == by_name, title
    stars = [t for t in shown["Validation accuracy"]["data"]
             if t.get("marker", {}).get("symbol") == "star"]
    assert len(stars) == 3


def test_smoothing_keeps_the_raw_curve_faint_and_log_scale_applies_to_loss(trained) -> None:
    at = compare(trained, "tiny-cnn", "small-cnn")
    at.slider(key="compare_smooth").set_value(0.9)
    at.toggle(key="compare_log").set_value(True).run()
    assert not at.exception, at.exception
    loss = figures(at)["Train loss (per step)"]
    assert any(trace.get("opacity") == 0.25 for trace in loss["data"]), "raw curve behind"
    assert figures(at)["Validation loss"]["layout"]["yaxis"]["type"] == "log"
    assert figures(at)["Validation accuracy"]["layout"]["yaxis"].get("type") != "log"


def test_differences_only_can_be_turned_off_to_show_every_setting(trained) -> None:
    at = compare(trained, "tiny-cnn", "tiny-cnn-lr0.01")
    assert set(table(at, "key").index) == {"epochs", "lr"}
    at.toggle(key="compare_diff_only").set_value(False).run()
    assert len(table(at, "key")) > 20


def test_confusion_difference_and_tradeoffs_mark_the_pareto_front(trained) -> None:
    at = compare(trained, *ARCHITECTURES)
    shown = figures(at)
    diff = next(figure for title, figure in shown.items() if " − " in title)
    assert diff["data"][0]["type"] == "heatmap" and diff["data"][0]["zmid"] == 0
    params = shown["Accuracy against parameters"]
    assert any(trace.get("name") == "Pareto front" for trace in params["data"]) or \
        sum(trace["marker"]["line"]["width"] > 0 for trace in params["data"]) == 1
    assert "Accuracy against inference latency" not in shown
    chart = at.get("plotly_chart")[0]
    assert "toImageButtonOptions" in chart.proto.config, "the toolbar downloads a PNG"


def test_measuring_latency_adds_it_to_the_table_and_the_charts(trained) -> None:
    at = compare(trained, "tiny-cnn", "small-cnn")
    assert "not measured yet" in texts(at.markdown)
    at.button(key="compare_latency_go").click().run()
    assert not at.exception, at.exception
    assert "Accuracy against inference latency" in figures(at)
    assert "**Fastest to run:**" in texts(at.markdown)
    assert table(at, "latency_p50_ms")["latency_p50_ms"].notna().all()


def test_parallel_coordinates_appear_once_more_than_a_few_runs_are_chosen(trained) -> None:
    few = compare(trained, *ARCHITECTURES)
    assert not any(t["type"] == "parcoords" for f in figures(few).values() for t in f["data"])
    many = compare(trained, *trained)
    assert any(t["type"] == "parcoords" for f in figures(many).values() for t in f["data"])
    assert len(many.get("download_button")) == 2  # metrics CSV and summary CSV


def test_ticked_rows_of_the_runs_table_open_in_compare(trained) -> None:
    at = open_page("pages/runs.py")
    assert at.button(key="runs_compare").disabled
    at.session_state["runs_table"] = {"selection": {"rows": [0, 2], "columns": []}}
    at.run()
    at.button(key="runs_compare").click().run()
    assert not at.exception, at.exception
    newest_first = [run["run_id"] for run in Store().list_runs()]
    assert at.multiselect(key="compare_runs").value == [newest_first[0], newest_first[2]]


# Run card -----------------------------------------------------------------------------------

def test_run_card_shows_the_environment_and_rerun_queues_the_same_config(trained) -> None:
    run_id = trained["small-cnn"]
    at = open_page("pages/runs.py", run_pick=run_id)
    card = texts(at.markdown)
    assert "**PyTorch:**" in card and "**device:** cpu" in card
    assert "**Content hash:**" in card and "**Split:** 240 train / 30 val / 30 test" in card
    at.button(key="run_rerun").click().run()
    assert not at.exception, at.exception
    [queued] = Store().list_runs(status=["queued"])
    try:
        original = Store().get_run(run_id)["config"]
        assert {**queued["config"], "name": None} == {**original, "name": None}
        assert at.session_state["run_pick"] == queued["run_id"]
    finally:  # the other tests see the module's four runs only
        Store().update_run(queued["run_id"], status="stopped")
        delete_run(queued["run_id"], Store())


# Error analysis -----------------------------------------------------------------------------

def test_a_cell_opens_its_images_and_marks_save_a_new_dataset_version(trained) -> None:
    run_id = trained["tiny-cnn"]
    at = open_page("pages/mistakes.py", mistakes_run=run_id)
    frame = validation_predictions(run_id)
    wrong = frame[~frame["correct"]].iloc[0]
    at.selectbox(key=f"mistakes_true_{run_id}").set_value(wrong["true"])
    at.selectbox(key=f"mistakes_pred_{run_id}").set_value(wrong["predicted"]).run()
    cell = cell_images(frame, wrong["true"], wrong["predicted"])
    assert len(at.get("image")) == min(24, len(cell))
    first = int(cell.iloc[0]["index"])
    at.selectbox(key=mark_key_for("0", "shapes", first)).set_value("remove").run()
    assert not at.exception, at.exception
    at.text_input(key="mistakes_version_shapes").input("shapes-clean")
    at.button(key="mistakes_save").click().run()
    assert not at.exception, at.exception
    assert "shapes-clean" in list_datasets()
    assert len(load_dataset("shapes-clean").items) == len(load_dataset("shapes").items) - 1
    assert "Saved dataset shapes\\-clean" in texts(at.success)
    box = at.selectbox(key=mark_key_for("0", "shapes", first))
    assert box.value == "keep", "marks start afresh"


def test_mark_keys_of_two_datasets_never_collide() -> None:
    """Clearing dataset "b" once reset "a_b"'s boxes: the keys were parsed with rsplit."""
    keys_b = {mark_key_for("0", "b", index) for index in range(50)}
    keys_ab = {mark_key_for("0", "a_b", index) for index in range(50)}
    assert not keys_b & keys_ab
    assert not any(key.endswith("_b") for key in keys_ab)


def test_the_most_confident_mistakes_and_class_galleries_show_images(trained) -> None:
    run_id = trained["small-cnn"]
    at = open_page("pages/mistakes.py", mistakes_run=run_id)
    at.button_group(key="mistakes_view").set_value("Class gallery").run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 10  # shapes: 10 validation images per class
    at.button_group(key="mistakes_view").set_value("Most confident mistakes").run()
    assert not at.exception, at.exception
    wrong = int((~validation_predictions(run_id)["correct"]).sum())
    assert len(at.get("image")) == min(24, wrong)  # every mistake, up to "Images at most"


# Sweep --------------------------------------------------------------------------------------

def test_a_sweep_takes_the_train_form_s_augmentation_settings(shapes_dataset) -> None:
    """Its runs flipped whatever one chose, once: the settings come from the same schema."""
    at = open_page("pages/sweeps.py")
    at.multiselect(key="sweep_models").set_value(["tiny-cnn"])
    at.selectbox(key="sweep_flip").set_value("off")
    at.number_input(key="sweep_pad_crop").set_value(0).run()
    at.button(key="sweep_go").click().run()
    assert not at.exception, at.exception
    [run] = Store().list_runs()
    assert run["config"]["flip"] == "off" and run["config"]["pad_crop"] == 0
    Store().update_run(run["run_id"], status="stopped")
    delete_run(run["run_id"], Store())


def test_a_sweep_queues_every_configuration_as_a_group_and_ranks_them(shapes_dataset) -> None:
    at = open_page("pages/sweeps.py")
    at.multiselect(key="sweep_models").set_value(list(ARCHITECTURES))
    at.number_input(key="sweep_epochs").set_value(3)
    at.number_input(key="sweep_seeds").set_value(2)
    at.text_input(key="sweep_lrs").input("0.001, 0.003").run()
    assert "This queues **12 runs**" in texts(at.caption)
    at.button(key="sweep_go").click().run()
    assert not at.exception, at.exception
    store = Store()
    runs = store.list_runs()
    assert len(runs) == 12 and {run["group_name"] for run in runs} == {"shapes-sweep-1"}
    assert {run["status"] for run in runs} == {"queued"}
    for run in runs:  # finish them by hand: small-cnn at lr 0.003 wins
        win = run["model"] == "small-cnn" and run["config"]["lr"] == 0.003
        acc = 0.9 if win else 0.5 + 0.01 * run["config"]["seed"]
        store.update_run(run["run_id"], status="completed", epoch=3, best_val_acc=acc,
                         test_acc=acc)
    at.run()
    ranking = table(at, "configuration")
    assert len(ranking) == 6
    assert ranking.iloc[0]["configuration"].startswith("small-cnn lr=0.003")
    assert ranking.iloc[1]["test acc (mean ± std)"] == "50.5% ± 0.7%"
    # two seeds: mean ± t(0.975, 1) · std / √2 = 50.5% ± 6.4%; the winner's seeds agree
    assert ranking.iloc[1]["test acc 95% interval"] == "44.1% – 56.9%"
    assert ranking.iloc[0]["test acc 95% interval"] == "90.0% – 90.0%"
    shown = texts(at.markdown).replace("\\", "")  # markdown escapes
    assert "**Best so far:** small-cnn lr=0.003" in shown and "not clearly ahead" not in shown
    assert "95% intervals overlap" in texts(at.caption)  # the five runners-up tie


def test_a_sweep_with_a_bad_learning_rate_says_what_to_write(shapes_dataset) -> None:
    at = open_page("pages/sweeps.py")
    at.text_input(key="sweep_lrs").input("fast").run()
    assert "is not a learning rate" in texts(at.error)
    assert "sweep_go" not in [button.key for button in at.button], "nothing to queue"


@pytest.mark.parametrize(("page", "says", "links_to"), [
    ("pages/compare.py", "No runs to compare yet", "train"),
    ("pages/sweeps.py", "Add a dataset first", "datasets"),
    ("pages/mistakes.py", "No trained model yet", "train")])
def test_the_new_pages_say_what_to_do_on_an_empty_workspace(studio_home, page: str, says: str,
                                                            links_to: str) -> None:
    at = open_page(page)
    assert says in texts(at.info)
    assert links_to in [link.proto.page for link in at.get("page_link")]  # URL paths


def test_compare_copes_with_one_run_a_queued_run_and_a_failed_one(trained) -> None:
    store = Store()
    queued = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=1), store)
    failed = new_run(TrainConfig(data="shapes", model="small-cnn", epochs=1), store,
                     status="failed")
    try:
        at = compare(trained, "tiny-cnn")
        assert "Most accurate" in texts(at.markdown)
        at = open_page("pages/compare.py", compare_pick=[queued, failed, trained["tiny-cnn"]])
        assert not at.exception, at.exception
    finally:
        for run_id in (queued, failed):
            store.update_run(run_id, status="stopped")
            delete_run(run_id, store)
