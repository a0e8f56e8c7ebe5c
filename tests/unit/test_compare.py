"""Comparing runs: config diffs, per-class and confusion differences, the Pareto front,
smoothing, colours, and the run card. Pure functions on hand-made data, plus two real one-epoch
runs on the built-in shapes dataset for the parts that read the store."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from core.analysis import compare
from core.analysis.compare import (
    MISSING,
    PALETTE,
    best_and_last_of,
    best_points,
    config_diff,
    config_table,
    confusion_difference,
    ema,
    pareto_front,
    per_class_comparison,
    run_colors,
    top_confusions,
)
from core.config import TrainConfig
from core.runs.card import NOT_RECORDED, clone_config, rerun_config, run_card

# ------------------------------------------------------------------------------ real runs

@pytest.fixture(scope="module")
def two_runs(shapes_workspace, train_shapes_run):
    """Two one-epoch tiny-cnn runs on shapes, differing in learning rate."""
    store = shapes_workspace
    return store, [train_shapes_run(store, lr=lr) for lr in (0.002, 0.004)]


# ------------------------------------------------------------------------------ config diff

def test_config_diff_flattens_nested_dicts_with_dotted_keys():
    diff = config_diff({"a": {"lr": 0.1, "extra": {"spec": {"width": 8}, "tag": "x"}},
                        "b": {"lr": 0.1, "extra": {"spec": {"width": 16}, "tag": "x"}}})
    assert diff == {"extra.spec.width": {"a": 8, "b": 16}}


def test_config_diff_counts_a_missing_key_as_a_difference():
    diff = config_diff({"a": {"lr": 0.1, "jitter": 0.2}, "b": {"lr": 0.1}})
    assert diff == {"jitter": {"a": 0.2, "b": MISSING}}


def test_config_diff_leaves_out_equal_keys():
    a = {"model": "tiny-cnn", "lr": 0.001, "layers": [1, 2], "extra": {}, "name": None}
    b = {"model": "tiny-cnn", "lr": 1e-3, "layers": [1, 2], "extra": {}, "name": None,
         "seed": 1}
    assert config_diff({"a": a, "b": b, "c": dict(a)}) == {
        "seed": {"a": MISSING, "b": 1, "c": MISSING}}


def test_config_diff_of_one_run_is_empty():
    assert config_diff({"a": {"lr": 0.1, "extra": {"x": 1}}}) == {}


def test_config_table_marks_differing_rows_in_config_order():
    table = config_table({"a": {"model": "m", "lr": 0.1, "extra": {"k": [1]}},
                          "b": {"model": "m", "lr": 0.2, "extra": {"k": [1]}}})
    assert list(table.index) == ["model", "lr", "extra.k"]
    assert list(table.columns) == ["a", "b", "differs"]
    assert table["differs"].tolist() == [False, True, False]
    assert table.loc["extra.k", "a"] == "[1]"  # lists shown whole as JSON


def test_config_table_differences_only_keeps_differing_rows():
    configs = {"a": {"model": "m", "lr": 0.1, "seed": 0},
               "b": {"model": "m", "lr": 0.2, "seed": 0, "jitter": 0.1}}
    table = config_table(configs, differences_only=True)
    assert list(table.index) == ["lr", "jitter"]
    assert table.loc["jitter", "a"] == MISSING
    assert table["differs"].all()


# ---------------------------------------------------------------------- per class, confusion

def fake_run(run_id: str, per_class: dict[str, tuple[float, float]], **fields) -> dict:
    summary = {"per_class": [{"class": name, "support": 10, "accuracy": acc, "f1": f1}
                             for name, (acc, f1) in per_class.items()]}
    return {"run_id": run_id, "name": run_id, "status": "completed", "model": "tiny-cnn",
            "data": "d", "epoch": 1, "summary": summary, "config": {}, **fields}


def test_per_class_difference_is_run_minus_reference():
    reference = fake_run("ref", {"cat": (0.5, 0.4), "dog": (0.9, 0.8)})
    other = fake_run("new", {"cat": (0.75, 0.6), "dog": (0.8, 0.85)})
    frame = per_class_comparison([reference, other]).set_index(["class", "run_id"])
    assert frame.loc[("cat", "new"), "accuracy_diff"] == pytest.approx(0.25)  # better: positive
    assert frame.loc[("dog", "new"), "accuracy_diff"] == pytest.approx(-0.1)  # worse: negative
    assert frame.loc[("dog", "new"), "f1_diff"] == pytest.approx(0.05)
    assert frame.loc[("cat", "ref"), "accuracy_diff"] == 0


def test_per_class_difference_is_nan_for_a_class_the_reference_lacks():
    frame = per_class_comparison([fake_run("ref", {"cat": (0.5, 0.5)}),
                                  fake_run("new", {"cat": (0.5, 0.5), "eel": (1.0, 1.0)})])
    eel = frame[frame["class"] == "eel"].iloc[0]
    assert math.isnan(eel["accuracy_diff"])


def test_confusion_difference_is_normalised_by_row():
    small = [[3, 1], [0, 4]]  # 4 images per class
    large = [[60, 20], [40, 40]]  # 80 images per class: same first row in fractions
    difference = confusion_difference(small, large)
    np.testing.assert_allclose(difference, [[0.0, 0.0], [0.5, -0.5]])
    assert np.allclose(difference.sum(axis=1), 0)  # rows of fractions both sum to one


def test_confusion_difference_keeps_an_empty_row_at_zero():
    difference = confusion_difference([[2, 0], [0, 0]], [[1, 1], [0, 0]])
    np.testing.assert_allclose(difference, [[-0.5, 0.5], [0.0, 0.0]])


def test_confusion_difference_refuses_different_classes_or_shapes():
    with pytest.raises(ValueError, match="different classes"):
        confusion_difference([[1, 0], [0, 1]], [[1, 0], [0, 1]], ["cat", "dog"], ["cat", "eel"])
    with pytest.raises(ValueError, match="square"):
        confusion_difference([[1, 0], [0, 1]], np.eye(3))


# ------------------------------------------------------------------------------ Pareto front

def test_pareto_front_excludes_dominated_points():
    # (parameters, accuracy): fewer parameters and more accuracy are better
    points = [(1, 0.70), (2, 0.80), (3, 0.75), (4, 0.90), (5, 0.90), (1.5, 0.60)]
    assert pareto_front(points) == [True, True, False, True, False, False]


def test_pareto_front_keeps_equal_points_and_drops_missing_ones():
    points = [(1, 0.8), (1, 0.8), (2, 0.7), (None, 0.99), (0.5, float("nan"))]
    assert pareto_front(points) == [True, True, False, False, False]


def test_pareto_front_follows_the_axis_directions():
    points = [(1, 0.5), (2, 0.6)]
    assert pareto_front(points, minimize_x=True, maximize_y=True) == [True, True]
    assert pareto_front(points, minimize_x=False, maximize_y=True) == [False, True]
    assert pareto_front(points, minimize_x=True, maximize_y=False) == [True, False]
    assert pareto_front([]) == []


def test_tradeoff_points_mark_the_front_from_the_table():
    table = pd.DataFrame({"run_id": ["a", "b", "c"], "name": ["a", "b", "c"],
                          "params": [10, 20, 30], "test_acc": [0.5, 0.4, None]})
    frame = compare.tradeoff_points(table, "params")
    assert frame["pareto"].tolist() == [True, False, False]


# ------------------------------------------------------------------------------ smoothing

def test_ema_weight_zero_is_identity():
    values = [3.0, -1.0, 7.5, 0.0]
    assert ema(values, 0.0) == values


def test_ema_keeps_a_constant_series_constant():
    assert ema([2.5] * 50, 0.95) == pytest.approx([2.5] * 50)


def test_ema_is_debiased_from_the_first_value():
    smoothed = ema([10.0, 0.0], 0.6)
    assert smoothed[0] == pytest.approx(10.0)  # not 0.4 × 10 as an undebiased EMA would give
    # second: (0.6·0.4·10 + 0.4·0) / (1 − 0.6²)
    assert smoothed[1] == pytest.approx(2.4 / 0.64)


def test_ema_passes_non_finite_values_through_without_disturbing_the_rest():
    smoothed = ema([1.0, float("nan"), 1.0], 0.5)
    assert smoothed[0] == 1.0 and math.isnan(smoothed[1]) and smoothed[2] == pytest.approx(1.0)


def test_ema_refuses_a_weight_of_one():
    with pytest.raises(ValueError):
        ema([1.0], 1.0)


def test_smooth_treats_each_run_and_metric_separately():
    frame = pd.DataFrame({"run_id": ["a", "a", "b", "b"], "name": ["loss"] * 4,
                          "x": [1, 2, 1, 2], "value": [1.0, 1.0, 5.0, 5.0]})
    smoothed = compare.smooth(frame, 0.9)
    assert smoothed["value"].tolist() == pytest.approx([1.0, 1.0, 5.0, 5.0])
    assert smoothed["raw"].tolist() == [1.0, 1.0, 5.0, 5.0]


# ------------------------------------------------------------------------------ colours

def test_run_colors_are_stable_across_calls_and_orders():
    ids = [f"20260101-000000-{i:04x}" for i in range(6)]
    first = run_colors(ids)
    assert run_colors(list(reversed(ids))) == first
    assert run_colors(ids) == first
    assert set(first.values()) <= set(PALETTE)


def test_run_colors_are_distinct_within_a_selection_and_a_run_alone_keeps_its_hash():
    ids = [f"run-{i}" for i in range(len(PALETTE))]
    assert len(set(run_colors(ids).values())) == len(PALETTE)
    assert run_colors(["run-3"])["run-3"] == PALETTE[compare.color_slot("run-3")]


# ------------------------------------------------------------------------------ best and last

def test_best_and_last_keep_the_first_best_epoch_and_the_last_value():
    rows = [{"name": "epoch/val_acc", "epoch": 1, "value": 0.6},
            {"name": "epoch/val_acc", "epoch": 2, "value": 0.8},
            {"name": "epoch/val_acc", "epoch": 3, "value": 0.8},
            {"name": "epoch/val_acc", "epoch": 4, "value": 0.7},
            {"name": "epoch/val_loss", "epoch": 1, "value": 0.9},
            {"name": "epoch/val_loss", "epoch": 2, "value": 0.5},
            {"name": "epoch/val_loss", "epoch": 4, "value": 0.6}]
    result = best_and_last_of(rows)
    assert (result["best_val_acc"], result["best_epoch"]) == (0.8, 2)
    assert (result["last_val_acc"], result["last_epoch"]) == (0.7, 4)
    assert (result["best_val_loss"], result["best_loss_epoch"]) == (0.5, 2)
    assert result["last_val_loss"] == 0.6
    assert best_and_last_of([])["best_val_acc"] is None


def test_best_points_mark_each_runs_best_epoch():
    frame = pd.DataFrame({"run_id": ["a", "a", "a", "b", "b"],
                          "name": ["epoch/val_acc"] * 5, "x": [1, 2, 3, 1, 2],
                          "value": [0.5, 0.9, 0.9, 0.7, 0.6]})
    best = best_points(frame).set_index("run_id")
    assert best.loc["a", "x"] == 2 and best.loc["b", "x"] == 1


def test_hyperparameter_frame_keeps_varying_keys_and_the_target():
    runs = [{"run_id": "a", "config": {"model": "m1", "lr": 0.1, "seed": 0, "name": "x"},
             "test_acc": 0.5},
            {"run_id": "b", "config": {"model": "m2", "lr": 0.2, "seed": 0, "name": "y"},
             "test_acc": 0.7}]
    frame = compare.hyperparameter_frame(runs)
    assert list(frame.columns) == ["model", "lr", "test_acc"]
    assert frame["model"].dtype == "category" and frame["lr"].tolist() == [0.1, 0.2]


# ------------------------------------------------------------------------------ from the store

def test_curves_share_one_shape_on_every_x_axis(two_runs):
    store, run_ids = two_runs
    for x in ("step", "epoch", "seconds"):
        frame = compare.curves(store, run_ids, x=x, names=["loss", "epoch/val_acc"])
        assert list(frame.columns) == ["run_id", "name", "x", "value"]
        assert set(frame["run_id"]) == set(run_ids)
        assert set(frame["name"]) == {"loss", "epoch/val_acc"}
        assert (frame["x"] >= 0).all()
    epochs = compare.curves(store, run_ids, x="epoch", names=["epoch/val_acc"])
    assert epochs["x"].tolist() == [1.0, 1.0]


def test_comparison_table_shows_best_and_last_with_costs(two_runs):
    store, run_ids = two_runs
    table = compare.comparison_table([store.get_run(run_id) for run_id in run_ids])
    assert table["run_id"].tolist() == run_ids
    row = table.iloc[0]
    assert row["params"] > 0 and row["flops"] > 0 and row["train_seconds"] > 0
    assert row["best_epoch"] == 1
    assert row["best_val_acc"] is not None and row["last_val_acc"] is not None
    assert best_and_last_of(store.metrics(run_ids[0]))["best_val_acc"] == row["best_val_acc"]


def test_comparison_csv_holds_every_metric_and_the_final_results(two_runs):
    store, run_ids = two_runs
    import io

    frame = pd.read_csv(io.StringIO(compare.comparison_csv(store, run_ids)))
    assert set(frame["run_id"]) == set(run_ids)
    assert {"loss", "epoch/val_acc", "final/test_acc", "final/params"} <= set(frame["metric"])
    assert len(frame[frame["metric"] == "final/test_acc"]) == 2


def test_inference_latency_is_positive(two_runs):
    store, run_ids = two_runs
    latency = compare.inference_latency(run_ids[0], repeats=3, warmup=1, store=store)
    assert 0 < latency["p50_ms"] <= latency["p90_ms"]


def test_per_class_and_confusion_of_real_runs_line_up(two_runs):
    store, run_ids = two_runs
    runs = [store.get_run(run_id) for run_id in run_ids]
    frame = per_class_comparison(runs)
    assert set(frame["class"]) == {"circle", "square", "triangle"}
    (classes_a, a), (classes_b, b) = (compare.run_confusion(run) for run in runs)
    assert confusion_difference(a, b, classes_a, classes_b).shape == (3, 3)


# ------------------------------------------------------------------------------ run card

def test_run_card_records_config_dataset_split_seed_and_environment(two_runs):
    store, run_ids = two_runs
    card = run_card(run_ids[0], store)
    assert card["config"]["lr"] == 0.002 and card["seed"] == 0
    dataset = card["dataset"]
    assert dataset["name"] == "shapes" and len(dataset["content_hash"]) == 16
    assert dataset["changed"] is False
    assert dataset["splits"] == {"train": 240, "val": 30, "test": 30}
    assert card["environment"]["torch"] and card["environment"]["device"] == "cpu"
    assert card["results"]["test_acc"] is not None


def test_run_card_says_not_recorded_when_the_run_never_ran(two_runs):
    store, _ = two_runs
    run_id = store.create_run(TrainConfig(data="shapes").to_dict())
    card = run_card(run_id, store)
    assert card["environment"] == NOT_RECORDED
    assert card["dataset"]["content_hash"] == NOT_RECORDED


def test_rerun_config_is_an_exact_copy_under_a_new_name(two_runs):
    store, run_ids = two_runs
    run = store.get_run(run_ids[0])
    config = rerun_config(run)
    assert config.name == f"{run['name']}-rerun"
    assert {**config.to_dict(), "name": None} == {**run["config"], "name": None}
    config.extra["changed"] = True
    assert "changed" not in store.get_run(run_ids[0])["config"]["extra"]


def test_clone_config_keeps_every_setting_but_the_name(two_runs):
    store, run_ids = two_runs
    run = store.get_run(run_ids[1])
    config = clone_config(run)
    assert config.name is None and config.lr == 0.004 and config.data == "shapes"


def test_run_card_prefers_the_split_recorded_at_run_time(two_runs):
    store, _ = two_runs
    from core.data.dataset import load_dataset
    from core.workspace import runs_dir

    run_id = store.create_run(TrainConfig(data="shapes").to_dict())
    recorded = {"train": 1, "val": 2, "test": 3}
    (runs_dir() / run_id).mkdir(parents=True)
    (runs_dir() / run_id / "model.json").write_text(json.dumps({
        "content_hash": load_dataset("shapes").content_hash, "splits": recorded,
        "split_seed": 5}))
    dataset = run_card(run_id, store)["dataset"]
    assert (dataset["splits"], dataset["split_seed"], dataset["changed"]) == (recorded, 5, False)


def test_top_confusions_lists_the_largest_mistakes_first() -> None:
    matrix = [[5, 2, 0], [4, 3, 1], [0, 0, 9]]
    assert top_confusions(["a", "b", "c"], matrix, k=2) == [("b", "a", 4, 8), ("a", "b", 2, 7)]
    assert top_confusions(["a", "b"], [[3, 0], [0, 3]]) == []
