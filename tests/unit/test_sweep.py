"""Architecture sweeps: the planned grid, its names, queuing as a group, and the per-configuration
summary (mean ± std over seeds, ranked) on hand-made store rows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core.analysis.sweep import (
    free_sweep_name,
    grid_shape,
    group_runs,
    group_summary,
    parse_rates,
    plan_sweep,
    submit_sweep,
)
from core.config import TrainConfig
from core.store import Store


@pytest.fixture(autouse=True)
def workspace(studio_home: Path) -> Path:
    """Every test on its own empty store (conftest's studio_home)."""
    return studio_home


BASE = TrainConfig(data="shapes", epochs=3, optimizer="adamw")


# ------------------------------------------------------------------------------ plan

def test_plan_sweep_is_the_cartesian_product():
    configs = plan_sweep(BASE, ["tiny-cnn", "small-cnn"], lrs=[1e-3, 3e-3],
                         batch_sizes=[32, 64], seeds=[0, 1, 2])
    assert len(configs) == 2 * 2 * 2 * 3
    combos = {(c.model, c.lr, c.batch_size, c.seed) for c in configs}
    assert len(combos) == len(configs)
    assert all(c.data == "shapes" and c.epochs == 3 for c in configs)


def test_plan_sweep_names_say_model_lr_and_seed():
    configs = plan_sweep(BASE, ["tiny-cnn", "small-cnn"], lrs=[0.001, 0.01], seeds=[0, 1])
    names = [c.name for c in configs]
    assert "tiny-cnn/lr=0.001/seed=0" in names and "small-cnn/lr=0.01/seed=1" in names
    assert len(set(names)) == len(names) == 8
    assert configs[0].seed == 0 and configs[-1].seed == 1  # seeds vary slowest


def test_plan_sweep_names_show_batch_size_only_when_it_is_swept():
    configs = plan_sweep(BASE, ["tiny-cnn"], batch_sizes=[16, 32])
    assert [c.name for c in configs] == ["tiny-cnn/lr=0.002/bs=16/seed=0",
                                         "tiny-cnn/lr=0.002/bs=32/seed=0"]


def test_plan_sweep_keeps_base_values_where_no_grid_is_given():
    base = TrainConfig(data="shapes", lr=0.05, batch_size=128, seed=7, label_smoothing=0.1)
    configs = plan_sweep(base, ["tiny-cnn", "tiny-cnn"])  # duplicates collapse
    assert len(configs) == 1
    config = configs[0]
    assert (config.lr, config.batch_size, config.seed, config.label_smoothing) == (
        0.05, 128, 7, 0.1)
    assert base.name is None  # the base is not modified


def test_plan_sweep_puts_the_budget_into_every_config():
    configs = plan_sweep(BASE, ["tiny-cnn", "small-cnn"], budget_minutes=2.5)
    assert [c.budget_minutes for c in configs] == [2.5, 2.5]


def test_plan_sweep_refuses_an_empty_model_list_and_bad_values():
    with pytest.raises(ValueError, match="at least one"):
        plan_sweep(BASE, [])
    with pytest.raises(ValueError, match="learning rate"):
        plan_sweep(BASE, ["tiny-cnn"], lrs=[-1.0])


# ------------------------------------------------------------------------------ submit

def test_submit_sweep_queues_every_config_in_the_group():
    store = Store()
    configs = plan_sweep(BASE, ["tiny-cnn", "small-cnn"], seeds=[0, 1])
    run_ids = submit_sweep("arch", configs, store, start_worker=False)
    runs = [store.get_run(run_id) for run_id in run_ids]
    assert len(runs) == 4
    assert all(run["group_name"] == "arch" and run["status"] == "queued" for run in runs)
    assert {run["name"] for run in runs} == {f"arch/{c.name}" for c in configs}
    assert configs[0].name == "tiny-cnn/lr=0.002/seed=0"  # the plan itself is left as it was


def test_a_second_sweep_may_not_take_a_used_group_name(studio_home):
    store = Store()
    submit_sweep("arch", plan_sweep(BASE, ["tiny-cnn"]), store, start_worker=False)
    with pytest.raises(ValueError, match="already a sweep named arch"):
        submit_sweep(" arch ", plan_sweep(BASE, ["small-cnn"]), store, start_worker=False)
    assert len(group_runs(store, "arch")) == 1


def test_submit_sweep_needs_a_group_name():
    with pytest.raises(ValueError, match="group name"):
        submit_sweep("  ", plan_sweep(BASE, ["tiny-cnn"]), Store(), start_worker=False)


# ------------------------------------------------------------------------------ summary

def finished_run(store: Store, group: str, model: str, seed: int, val: float | None,
                 test: float | None, seconds: float = 10.0, status: str = "completed",
                 lr: float | None = None) -> str:
    config = TrainConfig(data="shapes", model=model, seed=seed, lr=lr,
                         name=f"{group}/{model}/seed={seed}")
    run_id = store.create_run(config.to_dict(), name=config.name, group=group)
    store.update_run(run_id, status=status, best_val_acc=val, test_acc=test,
                     summary={"train_seconds": seconds})
    return run_id


def test_group_summary_gives_mean_and_std_over_seeds():
    store = Store()
    for seed, (val, test, seconds) in enumerate([(0.8, 0.7, 10), (0.9, 0.8, 20), (0.7, 0.9, 30)]):
        finished_run(store, "g", "tiny-cnn", seed, val, test, seconds)
    for seed, (val, test) in enumerate([(0.6, 0.5), (0.6, 0.7)]):
        finished_run(store, "g", "small-cnn", seed, val, test)
    finished_run(store, "other", "tiny-cnn", 0, 0.1, 0.1)  # another group: ignored
    summary = group_summary(store, "g").set_index("model")
    tiny = summary.loc["tiny-cnn"]
    assert tiny["seeds"] == 3 and tiny["runs"] == 3
    assert tiny["test_acc_mean"] == pytest.approx(0.8)
    assert tiny["test_acc_std"] == pytest.approx(np.std([0.7, 0.8, 0.9], ddof=1))
    assert tiny["best_val_acc_mean"] == pytest.approx(0.8)
    assert tiny["best_val_acc_std"] == pytest.approx(0.1)
    assert tiny["train_seconds_mean"] == pytest.approx(20)
    small = summary.loc["small-cnn"]
    assert small["test_acc_mean"] == pytest.approx(0.6)
    assert small["test_acc_std"] == pytest.approx(math.sqrt(0.02))


def test_group_summary_gives_a_95_percent_interval_and_says_when_neighbours_overlap():
    store = Store()
    for seed, test in enumerate([0.70, 0.80, 0.90]):
        finished_run(store, "g", "tiny-cnn", seed, 0.8, test)
    for seed, test in enumerate([0.74, 0.76]):
        finished_run(store, "g", "small-cnn", seed, 0.7, test)
    for seed, test in enumerate([0.20, 0.22]):
        finished_run(store, "g", "resnet18", seed, 0.2, test)
    summary = group_summary(store, "g").set_index("model")
    tiny = summary.loc["tiny-cnn"]
    # mean 0.8, std 0.1, n 3: 0.8 ± t(0.975, 2) · 0.1 / √3, t(0.975, 2) = 4.302653
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert tiny["test_acc_ci_low"] == pytest.approx(0.8 - half, abs=1e-5)
    assert tiny["test_acc_ci_high"] == pytest.approx(0.8 + half, abs=1e-5)
    assert bool(summary.loc["tiny-cnn", "overlaps_next"]) is True  # 0.55–1.05 vs 0.75 ± 0.13
    assert bool(summary.loc["small-cnn", "overlaps_next"]) is False  # far above resnet18
    assert summary.loc["resnet18", "overlaps_next"] is None  # the last has no next


def test_group_summary_ranks_by_mean_test_acc_then_val_acc():
    store = Store()
    finished_run(store, "g", "tiny-cnn", 0, 0.70, 0.80)
    finished_run(store, "g", "small-cnn", 0, 0.90, 0.80)  # same test acc, better val acc
    finished_run(store, "g", "resnet18", 0, 0.99, 0.60)
    summary = group_summary(store, "g")
    assert summary["model"].tolist() == ["small-cnn", "tiny-cnn", "resnet18"]
    assert summary["rank"].tolist() == [1, 2, 3]


def test_group_summary_counts_only_completed_runs_in_the_statistics():
    store = Store()
    finished_run(store, "g", "tiny-cnn", 0, 0.8, 0.8)
    finished_run(store, "g", "tiny-cnn", 1, None, None, status="running")
    finished_run(store, "g", "tiny-cnn", 2, 0.2, 0.2, status="failed")
    row = group_summary(store, "g").iloc[0]
    assert row["runs"] == 3 and row["seeds"] == 1
    assert row["test_acc_mean"] == pytest.approx(0.8)
    assert math.isnan(row["test_acc_std"])  # one seed: no spread to report


def test_group_summary_shows_the_settings_that_vary_between_configurations():
    store = Store()
    for lr in (0.001, 0.01):
        for seed in (0, 1):
            finished_run(store, "g", "tiny-cnn", seed, 0.5, 0.5 + lr, lr=lr)
    summary = group_summary(store, "g")
    assert list(summary.columns[:4]) == ["rank", "configuration", "model", "lr"]
    assert summary["lr"].tolist() == [0.01, 0.001]
    assert summary["configuration"].tolist() == ["tiny-cnn lr=0.01", "tiny-cnn lr=0.001"]
    assert summary["seeds"].tolist() == [2, 2]


def test_group_summary_of_an_unknown_group_is_empty():
    assert group_summary(Store(), "nobody").empty


def test_learning_rates_are_read_from_a_comma_list() -> None:
    assert parse_rates("0.001, 3e-3; 0.01") == [0.001, 0.003, 0.01]
    assert parse_rates("  ") == []
    with pytest.raises(ValueError, match="'fast' is not a learning rate"):
        parse_rates("0.001, fast")


def test_the_grid_shape_counts_each_dimension_and_multiplies_to_the_runs() -> None:
    base = TrainConfig(data="shapes", epochs=1)
    configs = plan_sweep(base, ["tiny-cnn", "small-cnn"], lrs=[0.001, 0.01], seeds=[0, 1, 2])
    shape = grid_shape(configs)
    assert shape == {"architecture": 2, "learning rate": 2, "batch size": 1, "seed": 3}
    assert math.prod(shape.values()) == len(configs)


def test_a_new_sweep_gets_the_first_free_name() -> None:
    assert free_sweep_name("fm", {"fm-sweep-1"}) == "fm-sweep-2"
