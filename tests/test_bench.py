"""A seconds-long smoke of the benchmarks: they run end to end and report; no timing asserted."""

import torch

from core import bench
from core.config import TrainConfig
from core.data.cache import cache_path
from core.datasets import add_demo


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


def test_time_to_accuracy_bench_trains_once_per_seed(studio_home):
    add_demo("shapes", "shapes")
    rows = bench.time_to_accuracy(TrainConfig(data="shapes", epochs=1), [0.5], seeds=[0, 1])
    assert [row["seed"] for row in rows] == [0, 1]
    assert all(row["train_seconds"] > 0 and "reached_0.5" in row for row in rows)
