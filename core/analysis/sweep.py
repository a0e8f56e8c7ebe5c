"""Architecture sweeps: one dataset and budget over several models (and optionally a small grid
of learning rates, batch sizes and seeds), queued as a named group and summarised per
configuration as mean ± std over seeds."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from core.analysis.compare import config_diff, display
from core.config import TrainConfig
from core.runs.queue import ensure_worker, submit
from core.store import Store
from core.workspace import next_free_name

NOT_A_SETTING = ("name", "seed")  # runs differing only in these are one configuration


def plan_sweep(base: TrainConfig, models: Sequence[str], lrs: Sequence[float] | None = None,
               batch_sizes: Sequence[int] | None = None, seeds: Sequence[int] | None = None,
               budget_minutes: float | None = None) -> list[TrainConfig]:
    """Every (model, lr, batch size, seed) of the grid as a config copied from `base`; None
    keeps base's value (seeds: base.seed). Seeds vary slowest, so a sweep cut short still has
    one seed of every configuration. A budget ends each run at the first epoch boundary that
    would pass it (base.epochs stays the cap). Names read `model/lr=…[/bs=…]/seed=…`."""
    models = list(dict.fromkeys(models))
    if not models:
        raise ValueError("Choose at least one architecture for the sweep.")
    lr_grid = list(dict.fromkeys(lrs)) if lrs else [base.lr]
    batch_grid = list(dict.fromkeys(batch_sizes)) if batch_sizes else [base.batch_size]
    seed_grid = list(dict.fromkeys(seeds)) if seeds else [base.seed]
    configs = []
    for seed, model, lr, batch_size in itertools.product(seed_grid, models, lr_grid, batch_grid):
        config = dataclasses.replace(
            base, model=model, lr=lr, batch_size=batch_size, seed=seed,
            budget_minutes=budget_minutes if budget_minutes is not None else base.budget_minutes,
            extra=dict(base.extra))
        config.extra.pop("spec", None)  # base's layer spec belongs to base's model
        config.name = sweep_name(config, show_batch=bool(batch_sizes))
        config.validate()
        configs.append(config)
    return configs


def parse_rates(text: str) -> list[float]:
    """'0.001, 3e-3' → [0.001, 0.003]; an empty box means the optimizer's default rate."""
    rates = []
    for part in text.replace(";", ",").split(","):
        if part.strip():
            try:
                rates.append(float(part))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not a learning rate; write numbers such "
                                 "as 0.001, 0.003") from None
    return rates


def grid_shape(configs: Sequence[TrainConfig]) -> dict[str, int]:
    """How many different values a planned sweep takes per dimension: architecture, learning
    rate, batch size, seed (their product is the number of runs)."""
    return {"architecture": len({c.model for c in configs}),
            "learning rate": len({c.peak_lr() for c in configs}),
            "batch size": len({c.batch_size for c in configs}),
            "seed": len({c.seed for c in configs})}


def free_sweep_name(data: str, taken: set[str]) -> str:
    """The first `<data>-sweep-N` no sweep is called yet."""
    return next_free_name(f"{data}-sweep-{{n}}", taken)


def sweep_name(config: TrainConfig, show_batch: bool) -> str:
    model = Path(config.model).stem if config.model.endswith(".json") else config.model
    parts = [model, f"lr={config.peak_lr():g}"]
    if show_batch:
        parts.append(f"bs={config.batch_size}")
    return "/".join([*parts, f"seed={config.seed}"])


def submit_sweep(group: str, configs: Sequence[TrainConfig], store: Store | None = None,
                 start_worker: bool = True) -> list[str]:
    """Queue the planned configs as group `group` (names prefixed `group/`); returns run ids."""
    group = group.strip()
    if not group:
        raise ValueError("Give the sweep a group name.")
    store = store or Store()
    if group_runs(store, group):  # a second sweep must not merge into the first one's table
        raise ValueError(f"There is already a sweep named {group}; choose another name.")
    run_ids = []
    for config in configs:
        config = dataclasses.replace(config, extra=dict(config.extra))
        config.name = f"{group}/{config.name}" if config.name else group
        run_ids.append(submit(config, store, group=group, start_worker=False))
    if start_worker and run_ids:
        ensure_worker()
    return run_ids


def group_runs(store: Store, group: str) -> list[dict]:
    return [run for run in store.list_runs() if run.get("group_name") == group]


def configuration_key(config: dict) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in NOT_A_SETTING},
                      sort_keys=True, default=str)


def group_summary(store: Store, group: str) -> pd.DataFrame:
    """One row per configuration of the group (its runs differing only in seed): the settings
    that vary, how many runs and finished seeds, mean and sample std (NaN for one seed) of best
    val acc and test acc over completed runs, mean training seconds, and `rank` (1 = best by
    mean test acc, then mean val acc). Sorted by rank."""
    runs = sorted(group_runs(store, group), key=lambda run: run["created_at"])
    by_key: dict[str, list[dict]] = {}
    for run in runs:
        by_key.setdefault(configuration_key(run["config"]), []).append(run)
    settings = config_diff({key: {k: v for k, v in members[0]["config"].items()
                                  if k not in NOT_A_SETTING}
                            for key, members in by_key.items()})
    shown = ["model", *(k for k in settings if k != "model")]
    rows = []
    for key, members in by_key.items():
        config = members[0]["config"]
        done = [run for run in members if run["status"] == "completed"]
        values = {name: display(settings[name][key]) if name in settings else config.get(name)
                  for name in shown}
        row = {"configuration": label(values), **values}
        row.update(runs=len(members), seeds=len({run["config"].get("seed") for run in done}),
                   **mean_std("best_val_acc", [run["best_val_acc"] for run in done]),
                   **mean_std("test_acc", [run["test_acc"] for run in done]),
                   train_seconds_mean=mean([(run["summary"] or {}).get("train_seconds")
                                            for run in done]),
                   run_ids=[run["run_id"] for run in members])
        rows.append(row)
    return rank(pd.DataFrame(rows))


def label(values: dict) -> str:
    """"resnet18 lr=0.01 batch_size=32": the model, then the other settings that vary."""
    return " ".join([str(values["model"]),
                     *(f"{name}={value}" for name, value in values.items() if name != "model")])


def mean(values: list) -> float:
    present = [float(v) for v in values if v is not None]
    return float(np.mean(present)) if present else float("nan")


def mean_std(name: str, values: list) -> dict:
    """Mean, sample std and the 95% interval of the mean (Student's t over the seeds; NaN
    below two seeds)."""
    present = [float(v) for v in values if v is not None]
    std = float(np.std(present, ddof=1)) if len(present) > 1 else float("nan")
    low, high = t_interval(mean(present), std, len(present))
    return {f"{name}_mean": mean(present), f"{name}_std": std, f"{name}_ci_low": low,
            f"{name}_ci_high": high}


def t_interval(centre: float, std: float, n: int) -> tuple[float, float]:
    if n < 2 or math.isnan(std):
        return float("nan"), float("nan")
    from scipy.stats import t  # scikit-learn's dependency; imported when a sweep is summarised

    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return centre - half, centre + half


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Best first (mean test acc, then mean val acc); `overlaps_next` is True where a row's
    95% interval of the mean test accuracy overlaps the next row's (the order between them
    may be noise), False where they are apart, None where either lacks an interval."""
    if frame.empty:
        return frame
    frame = frame.sort_values(["test_acc_mean", "best_val_acc_mean"], ascending=False,
                              na_position="last", kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame["overlaps_next"] = [intervals_overlap(frame, i, i + 1) for i in range(len(frame))]
    return frame


def intervals_overlap(frame: pd.DataFrame, i: int, j: int) -> bool | None:
    """Whether rows i and j's 95% intervals of the mean test accuracy overlap; None when
    there is no row j or either has no interval."""
    if j >= len(frame):
        return None
    ends = [float(frame.loc[row, key]) for row in (i, j)
            for key in ("test_acc_ci_low", "test_acc_ci_high")]
    if any(math.isnan(value) for value in ends):
        return None
    low_i, high_i, low_j, high_j = ends
    return bool(low_i <= high_j and low_j <= high_i)
