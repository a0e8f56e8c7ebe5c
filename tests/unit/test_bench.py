"""A seconds-long smoke of the benchmarks: they run end to end and report; no timing asserted."""

import pytest
import torch

from core.analysis import bench
from core.config import TrainConfig
from core.data.cache import cache_path
from core.data.catalog import add_demo


def test_pipeline_bench_reports_naive_engine_and_ceiling(studio_home):
    add_demo("shapes", "shapes")
    rows = bench.pipeline("shapes", "tiny-cnn", batch_size=16, steps=2, warmup=1, device="cpu")
    assert [row["pipeline"].split()[0] for row in rows] == ["naive", "engine", "ceiling"]
    assert all(row["images_per_s"] > 0 for row in rows)
    assert rows[1]["share_of_ceiling"] > 0
    table = bench.markdown_table(rows, "Pipeline", torch.device("cpu"))
    assert "Device: CPU" in table and "| naive" in table and "share_of_ceiling" in table


def test_ingest_bench_rebuilds_the_cache_and_keeps_the_old_one(studio_home):
    dataset = add_demo("shapes", "shapes")
    before = cache_path(dataset, 32).read_bytes()
    rows = bench.ingest("shapes", 32)
    assert rows[0]["images"] == 300 and rows[0]["images_per_s"] > 0
    assert cache_path(dataset, 32).read_bytes() == before


def test_time_to_accuracy_bench_trains_once_per_seed_from_a_cold_cache(studio_home):
    dataset = add_demo("shapes", "shapes")
    config = TrainConfig(data="shapes", epochs=1, device="cpu")
    rows = bench.time_to_accuracy(config, [0.0, 1.01], seeds=[0, 1])
    assert [row["seed"] for row in rows] == [0, 1, "mean of 2"]
    assert all(row["total_seconds"] > row["train_seconds"] > 0 for row in rows)
    assert rows[2]["test_acc"] == (rows[0]["test_acc"] + rows[1]["test_acc"]) / 2
    assert rows[2]["reached_0.0"] == "2/2" and rows[2]["reached_1.01"] == "0/2"
    assert cache_path(dataset, 32).exists()  # rebuilt by the run after being dropped


def test_bench_defaults_picks_one_set_by_its_built_in_and_refuses_others() -> None:
    from core.analysis.bench_defaults import BENCH_SETS, bench_sets

    assert bench_sets() == BENCH_SETS
    assert [s.kind for s in bench_sets("digits")] == ["digits"]
    with pytest.raises(ValueError, match="choose fashion-mnist or digits"):
        bench_sets("cifar")


def test_estimate_bench_says_the_page_s_sentence_then_times_the_run_it_describes(studio_home):
    from core.analysis.bench_estimate import estimate_vs_actual
    from core.store import Store

    add_demo("shapes", "shapes")
    [row] = estimate_vs_actual("shapes", ["cpu-quick"], {"epochs": 1, "device": "cpu"})
    assert row["recipe"] == "cpu-quick" and row["epochs"] == 1
    assert row["said"].startswith("about ") and row["said"].endswith("on this CPU")
    assert row["estimate_s"] > 0 and row["run_s"] >= row["train_s"] > 0
    assert row["run_over_estimate"] == pytest.approx(row["run_s"] / row["estimate_s"])
    [run] = Store().list_runs()
    assert run["status"] == "completed" and run["config"]["recipe"] == "cpu-quick"
