"""The time estimate before a run (core.training.estimate), with a fake probe where the rate
matters, and one real probe of a tiny model for the mechanics (no timing is asserted)."""

from __future__ import annotations

import itertools

import pytest

from core.config import TrainConfig
from core.training.estimate import (
    BACKWARD_FACTOR,
    Estimate,
    Probe,
    describe,
    duration_text,
    estimate_run,
    probe_batch,
    probe_rate,
    run_flops,
)
from models import create_model, model_profile

COUNTS = {"train": 1000, "val": 100, "test": 200}


def test_the_run_costs_three_forward_passes_per_training_image_each_epoch() -> None:
    flops = run_flops(1e6, epochs=2, counts=COUNTS)
    assert flops == 2 * (BACKWARD_FACTOR * 1000 + 100) * 1e6 + 200 * 1e6


def test_seconds_are_the_run_flops_over_the_probed_rate() -> None:
    config = TrainConfig(data="x", epochs=10)
    probe = Probe("cpu", flops_per_s=1e9)
    estimate = estimate_run(config, COUNTS, 1e6, probe)
    assert estimate.seconds == pytest.approx(run_flops(1e6, 10, COUNTS) / 1e9)
    assert estimate.on_cpu and not estimate.too_long_for_cpu
    assert describe(estimate) == "about 30 s on this CPU"


def test_a_cpu_run_over_ten_minutes_is_flagged_and_a_gpu_run_is_not() -> None:
    config = TrainConfig(data="x", epochs=100)
    slow = estimate_run(config, COUNTS, 1e8, Probe("cpu", 1e10))
    assert slow.too_long_for_cpu and describe(slow) == "about 52 min on this CPU"
    fast = estimate_run(config, COUNTS, 1e8, Probe("cuda", 1e10))
    assert not fast.too_long_for_cpu and describe(fast).endswith("on this GPU")


def test_a_time_budget_caps_the_estimate() -> None:
    config = TrainConfig(data="x", epochs=100, budget_minutes=5)
    estimate = estimate_run(config, COUNTS, 1e8, Probe("cpu", 1e10))
    assert estimate.seconds == 300 and estimate.capped_by_budget
    assert describe(estimate) == "about 5 min on this CPU (its time budget)"


def test_a_probe_without_throughput_is_refused() -> None:
    with pytest.raises(ValueError, match="rate above 0"):
        estimate_run(TrainConfig(data="x"), COUNTS, 1e6, Probe("cpu", 0.0))


@pytest.mark.parametrize(("seconds", "text"), [(3, "5 s"), (42, "40 s"), (89, "90 s"),
                                               (780, "13 min"), (7800, "2 h 10 min")])
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_the_probe_trains_at_the_run_batch_unless_a_step_would_be_long() -> None:
    assert probe_batch(1e3, 64) == 64
    assert probe_batch(1e3, 0) == 128, "auto: the CPU's batch"
    assert probe_batch(4e10, 64) == 2
    assert 2 <= probe_batch(1e9, 512) < 512


def test_the_probe_measures_steps_of_its_batch_over_the_clock() -> None:
    model = create_model("tiny-cnn", in_chans=3, num_classes=3, image_size=16)
    flops = model_profile(model, in_chans=3, image_size=16)["flops"]
    ticks = itertools.count(0.0, 0.25)  # a fake clock: each reading is 0.25 s later
    probe = probe_rate(model, in_chans=3, image_size=16, num_classes=3, flops_per_image=flops,
                       device="cpu", seconds=1.0, clock=lambda: next(ticks))
    # start reads 0; one step always, then one reading per test (0.25, 0.5, 0.75: a step
    # each; 1.0 stops), and the final reading is 1.25
    steps, elapsed = 4, 1.25
    assert probe == Probe("cpu", steps * probe_batch(flops) * BACKWARD_FACTOR * flops / elapsed)
    assert isinstance(estimate_run(TrainConfig(data="x"), COUNTS, flops, probe), Estimate)


def test_estimate_config_uses_the_model_s_flops_and_the_dataset_s_splits(shapes_dataset) -> None:
    from core.training.estimate import estimate_config

    config = TrainConfig(data="shapes", model="tiny-cnn", epochs=4, image_size=32)
    seen = {}

    def measure(model, **settings):
        seen.update(settings, model=model)
        return 2e6, Probe("cpu", 1e9)

    estimate = estimate_config(config, shapes_dataset, measure)
    counts = shapes_dataset.split_counts()
    assert seen["model"] == "tiny-cnn" and seen["image_size"] == 32
    assert seen["in_chans"] == shapes_dataset.channels
    assert estimate.seconds == pytest.approx(run_flops(2e6, 4, counts) / 1e9)
    assert estimate_config(config, shapes_dataset, lambda model, **_: (0.0, None)) is None


def test_the_estimate_bench_runs_each_recipe_after_saying_its_estimate(shapes_dataset,
                                                                        monkeypatch) -> None:
    import core.training.estimate
    from core.analysis.bench_estimate import estimate_vs_actual

    monkeypatch.setattr(core.training.estimate, "probe_rate",
                        lambda *args, **kwargs: Probe("cpu", 1e9))
    [row] = estimate_vs_actual("shapes", ["cpu-quick"], {"epochs": 1})
    assert row["recipe"] == "cpu-quick" and row["epochs"] == 1
    assert row["said"].startswith("about ") and row["said"].endswith("this CPU")
    assert row["run_over_estimate"] == pytest.approx(row["run_s"] / row["estimate_s"])
    assert 0 <= row["test_acc"] <= 1
