"""Which runs Compare opens with and which run leads: core.analysis.ranking."""

from __future__ import annotations

import pandas as pd

from core.analysis.compare import comparison_table
from core.analysis.ranking import (
    best_run_id,
    default_selection,
    headline_accuracy,
    leaders,
    short_names,
)


def run(run_id: str, *, status: str = "completed", epoch: int = 3, group: str | None = None,
        test: float | None = None, val: float | None = None, **summary) -> dict:
    return {"run_id": run_id, "name": run_id, "status": status, "model": "tiny-cnn",
            "data": "d", "epoch": epoch, "group_name": group, "test_acc": test,
            "best_val_acc": val, "last_val_acc": val, "summary": summary, "config": {}}


def test_compare_opens_with_the_latest_sweep_else_the_two_newest_runs_with_data() -> None:
    newest_first = [run("s3", group="g"), run("s2", group="g"), run("s1", group="g"),
                    run("old")]
    assert default_selection(newest_first) == ["s3", "s2", "s1"]
    plain = [run("queued", status="queued", epoch=0), run("empty", status="failed", epoch=0),
             run("b"), run("a")]
    assert default_selection(plain) == ["queued", "b"]
    assert default_selection([]) == []


def test_a_test_score_is_the_headline_else_the_best_validation_score() -> None:
    assert headline_accuracy(run("a", test=0.9, val=0.95)) == (0.9, "test")
    assert headline_accuracy(run("b", val=0.8)) == (0.8, "best validation")


def test_leaders_are_most_accurate_fastest_and_smallest() -> None:
    runs = [run("big", test=0.95, params=1000, train_images_per_s=100),
            run("quick", test=0.90, params=10, train_images_per_s=900)]
    table = comparison_table(runs, {"big": {"p50_ms": 9.0}, "quick": {"p50_ms": 1.0}})
    best = {name: row["run_id"] for name, row in leaders(table).items()}
    assert best == {"most_accurate": "big", "fastest_to_train": "quick",
                    "fastest_to_run": "quick", "smallest": "quick"}


def test_without_test_scores_the_leader_is_the_best_validation_score() -> None:
    table = comparison_table([run("a", val=0.7), run("b", val=0.8)])
    assert leaders(table)["most_accurate"]["run_id"] == "b"
    assert leaders(table)["fastest_to_run"] is None, "no latency measured"
    assert isinstance(table, pd.DataFrame)


def test_classify_picks_the_best_completed_run_with_a_test_score() -> None:
    runs = [run("running", status="running", test=0.99), run("val-only", val=0.99),
            run("tested", test=0.8)]
    assert best_run_id(runs) == "tested"
    assert best_run_id([run("failed", status="failed")]) == "failed"


def test_short_names_drop_the_parts_every_name_shares() -> None:
    sweep_names = ["g/tiny-cnn/lr=0.002/seed=0", "g/small-cnn/lr=0.002/seed=0",
                   "g/tiny-cnn/lr=0.002/seed=1"]
    assert short_names(sweep_names) == ["tiny-cnn/seed=0", "small-cnn/seed=0", "tiny-cnn/seed=1"]
    assert short_names(["a/x", "b/x/y"]) == ["a/x", "b/x/y"], "different shapes: kept whole"
    assert short_names(["run one", "run two"]) == ["run one", "run two"]


def paired_result(fixed: int, broken: int, p: float, better: str | None) -> dict:
    return {"counts": {"fixed": fixed, "broken": broken}, "p_value": p, "better": better,
            "a": {"run_id": "runner"}, "b": {"run_id": "best"}}


def test_the_most_accurate_run_is_called_better_only_when_significant() -> None:
    from core.analysis.ranking import accuracy_headline

    best, runner = {"name": "B", "accuracy": "91.0%"}, {"name": "A", "accuracy": "87.0%"}
    real = accuracy_headline(best, runner, paired_result(14, 3, 0.0127, "best"), "test")
    assert real == ("**Most accurate:** B — 91.0% test accuracy, better than A 87.0% "
                    "(14 fixed, 3 broken, p = 0.013)")
    noise = accuracy_headline(best, runner, paired_result(5, 3, 0.73, None), "test")
    assert noise == ("**Most accurate:** no clear winner — B 91.0% and A 87.0% differ within "
                     "noise (5 fixed, 3 broken, p = 0.73)")
    untested = accuracy_headline(best, runner, None, "test")
    assert "better" not in untested and "not compared image by image" in untested
    assert accuracy_headline(best, None, None, "test") == \
        "**Most accurate:** B — 91.0% test accuracy"
