"""`bench formats` and `bench serve`: what they report and the `best` rule (no timing is
asserted: speed is measured in bench/, not pinned in unit tests)."""

from __future__ import annotations

import json

import pytest

from core.__main__ import main
from core.analysis.formats import bench_formats, mark_best
from core.analysis.serve_bench import bench_serve
from core.config import TrainConfig
from core.data import catalog
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store

FORMATS = ["PyTorch eager", "TorchScript", "ONNX FP32", "ONNX INT8", "ONNX FP16"]


@pytest.fixture(scope="module")
def run_id(tmp_path_factory: pytest.TempPathFactory) -> str:
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("formats") / "workspace"
        patch.setenv("CNN_STUDIO_HOME", str(home))
        patch.delenv("CNN_STUDIO_DB", raising=False)
        catalog.add_demo("shapes", "shapes")
        store = Store()
        run = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=1, device="cpu"),
                      store, status="running")
        assert execute_run(run, store)["status"] == "completed"
        yield run


def test_every_format_is_measured_on_the_test_split(run_id) -> None:
    result = bench_formats(run_id, repeats=3, warmup=1, throughput_batches=2, threads=1)
    rows = result["rows"]
    assert [row["format"] for row in rows] == FORMATS
    assert result["split"] == "test" and result["images"] == 30 and result["threads"] == 1
    run = Store().get_run(run_id)
    assert rows[0]["accuracy"] == pytest.approx(run["test_acc"])  # eager = the run's own test
    assert rows[2]["accuracy"] == rows[0]["accuracy"]  # ONNX FP32 answers as PyTorch does
    for row in rows:
        assert row["p50_ms"] <= row["p90_ms"] and row["images_per_s"] > 0
        assert row["size_mb"] > 0 and row["device"] == "cpu"
    assert rows[3]["size_mb"] < rows[2]["size_mb"] / 2  # INT8 weights
    assert sum(row["best"] for row in rows) == 1
    best = next(row for row in rows if row["best"])
    assert (rows[0]["accuracy"] - best["accuracy"]) * 100 <= 0.5
    assert run["summary"]["format_bench"]["rows"] == rows


def test_the_fastest_format_losing_more_than_half_a_point_is_not_marked() -> None:
    rows = [{"format": "eager", "accuracy": 0.90, "p50_ms": 5.0},
            {"format": "int8", "accuracy": 0.894, "p50_ms": 1.0},  # 0.6 points lost
            {"format": "onnx", "accuracy": 0.896, "p50_ms": 2.0},  # 0.4 points lost
            {"format": "script", "accuracy": 0.90, "p50_ms": 3.0}]
    mark_best(rows)
    assert [row["format"] for row in rows if row["best"]] == ["onnx"]


def test_bench_formats_command_prints_a_table(run_id, capsys) -> None:
    assert main(["bench", "formats", "--run", run_id, "--steps", "2", "--warmup", "1",
                 "--threads", "1", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["kind"] == "formats" and len(payload["rows"]) == 5
    assert "★" in payload["markdown"] and "images/s (batch 32)" in payload["markdown"]


def test_bench_serve_answers_every_request_at_every_client_count(run_id) -> None:
    rows = bench_serve(run_id, [1, 3], requests_per_client=3)
    assert [(row["clients"], row["requests"], row["errors"]) for row in rows] == \
        [(1, 3, 0), (3, 9, 0)]
    for row in rows:
        assert row["requests_per_s"] > 0 and row["p50_ms"] <= row["p99_ms"]
