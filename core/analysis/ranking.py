"""Which runs to show and which is best: the rules the Compare and Classify pages answer with.

A run's headline accuracy is its test accuracy, or its best validation accuracy where it has
no test score (no test split, or not finished); every ranking here goes by that one rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.analysis.paired import format_p
from core.store import ACTIVE

DEFAULT_GROUP_MAX = 24  # runs of the latest sweep picked by default


def accuracy_key(table: pd.DataFrame) -> str:
    """The column a table of runs is ranked by: test accuracy when any run has one."""
    return "test_acc" if table["test_acc"].notna().any() else "best_val_acc"


def headline_accuracy(run: dict) -> tuple[float | None, str]:
    """(accuracy, "test" or "best validation") of one run (a store row)."""
    if run.get("test_acc") is not None:
        return run["test_acc"], "test"
    return run.get("best_val_acc"), "best validation"


def default_selection(runs: Sequence[dict]) -> list[str]:
    """The runs Compare opens with (`runs` newest first): the latest sweep's runs when the
    newest run belongs to one, else the two newest runs with something to show."""
    with_data = [run for run in runs if run["epoch"] or run["status"] in ACTIVE] or list(runs)
    if not with_data:
        return []
    group = with_data[0].get("group_name")
    members = [run["run_id"] for run in with_data if group and run.get("group_name") == group]
    if len(members) >= 2:
        return members[:DEFAULT_GROUP_MAX]
    return [run["run_id"] for run in with_data[:2]]


def best_row(table: pd.DataFrame, column: str, highest: bool) -> pd.Series | None:
    """The row with the highest (or lowest) value in `column`; None when no row has one."""
    values = pd.to_numeric(table[column], errors="coerce").dropna()
    if values.empty:
        return None
    return table.loc[values.idxmax() if highest else values.idxmin()]


def leaders(table: pd.DataFrame) -> dict[str, pd.Series | None]:
    """The runs that lead a comparison table (core.analysis.compare.comparison_table): the
    most accurate, the fastest to train, the fastest to run, the smallest."""
    return {"most_accurate": best_row(table, accuracy_key(table), highest=True),
            "fastest_to_train": best_row(table, "images_per_s", highest=True),
            "fastest_to_run": best_row(table, "latency_p50_ms", highest=False),
            "smallest": best_row(table, "params", highest=False)}


def ranked_by_accuracy(table: pd.DataFrame) -> pd.DataFrame:
    """The table's runs that have a headline accuracy, most accurate first."""
    key = accuracy_key(table)
    return table.dropna(subset=[key]).sort_values(key, ascending=False)


def best_run_id(runs: Sequence[dict]) -> str:
    """The run to classify with by default: the completed run with the best headline accuracy
    (a test score beats none), else any run. `runs` newest first, so ties go to the newest."""
    completed = [run for run in runs if run["status"] == "completed"] or list(runs)
    return max(completed, key=lambda run: (run.get("test_acc") is not None,
                                           run.get("test_acc") or 0.0,
                                           run.get("best_val_acc") or 0.0))["run_id"]


def short_names(names: list[str]) -> list[str]:
    """Names without the '/'-separated parts every one of them shares, so a sweep's
    'grp/tiny-cnn/lr=0.002/seed=0' reads 'tiny-cnn'. The full names where that would leave
    an empty or a repeated label."""
    parts = [name.split("/") for name in names]
    if len(names) < 2 or len({len(p) for p in parts}) != 1 or len(parts[0]) < 2:
        return list(names)
    varying = [i for i in range(len(parts[0])) if len({p[i] for p in parts}) > 1]
    short = ["/".join(p[i] for i in varying) for p in parts]
    return short if all(short) and len(set(short)) == len(short) else list(names)


def accuracy_headline(best: dict, runner_up: dict | None, paired: dict | None,
                      split: str) -> str:
    """The At-a-glance line on accuracy, in markdown (names already escaped). `best` and
    `runner_up` are {name, accuracy} (accuracy as text); `paired` is the image-by-image
    comparison of runner-up (A) against best (B) (core.analysis.paired), None when they
    could not be compared. The best is named *better* only when the difference is real."""
    line = f"{best['name']} — {best['accuracy']} {split} accuracy"
    if runner_up is None:
        return f"**Most accurate:** {line}"
    if paired is None:
        return (f"**Most accurate:** {line} (next: {runner_up['name']} {runner_up['accuracy']}; "
                "not compared image by image)")
    counts = (f"{paired['counts']['fixed']} fixed, {paired['counts']['broken']} broken, "
              f"{format_p(paired['p_value'])}")
    if paired["better"] == paired["b"]["run_id"]:
        return (f"**Most accurate:** {line}, better than {runner_up['name']} "
                f"{runner_up['accuracy']} ({counts})")
    return (f"**Most accurate:** no clear winner — {best['name']} {best['accuracy']} and "
            f"{runner_up['name']} {runner_up['accuracy']} differ within noise ({counts})")
