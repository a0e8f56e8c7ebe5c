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
