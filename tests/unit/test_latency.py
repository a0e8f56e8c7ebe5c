"""Single-image latency of a trained run, model loaded once, warm-up excluded."""

from __future__ import annotations

import pytest

from core.analysis.latency import single_image_latency
from core.config import TrainConfig
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store


def test_single_image_latency_gives_positive_ordered_percentiles(shapes_dataset) -> None:
    store = Store()
    run_id = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=1), store,
                     status="running")
    execute_run(run_id, store)
    result = single_image_latency(run_id, repeats=20, warmup=2)
    assert result["run_id"] == run_id and result["repeats"] == 20
    assert 0 < result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["max_ms"]
    assert result["mean_ms"] > 0 and result["image_size"] == 32


def test_single_image_latency_of_a_missing_run_says_so(studio_home) -> None:
    with pytest.raises(ValueError, match="There is no run"):
        single_image_latency("nope")


def test_the_shown_latency_is_the_median_of_several_calls_with_their_spread() -> None:
    from core.analysis.latency import latency_text, repeated_ms

    durations = [0.004, 0.312, 0.003, 0.005, 0.004, 0.006, 0.004]  # one slow outlier
    readings, at = [], 0.0
    for seconds in durations:  # each timed call reads the clock before and after
        readings += [at, at + seconds]
        at += seconds + 0.001
    now = iter(readings)
    calls = []
    result, timing = repeated_ms(lambda: calls.append(1) or "answer", repeats=7, budget_s=10,
                                 clock=lambda: next(now))
    assert result == "answer" and len(calls) == 8, "one warm-up call, then seven timed"
    assert timing["calls"] == 7
    assert timing["median_ms"] == pytest.approx(4.0)
    assert (timing["low_ms"], timing["high_ms"]) == pytest.approx((3.0, 312.0))
    assert latency_text(timing) == "4.0 ms (median of 7, 3.0–312.0 ms)"


def test_a_slow_model_is_timed_fewer_times_within_the_budget() -> None:
    from core.analysis.latency import repeated_ms

    ticks = iter(range(100))
    _, timing = repeated_ms(lambda: None, repeats=7, budget_s=0.5,
                            clock=lambda: float(next(ticks)))  # each call: 1 s
    assert timing["calls"] == 1
