"""Comparing runs: the numbers behind the Compare page, as plain data.

Everything here returns dicts, lists or pandas DataFrames; the page draws them.
Differences are always `run − reference` (the reference is the first run given),
so a positive number means "better than the reference" for accuracies.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from core.serving.infer import load_model
from core.store import Store

# Tableau 10 then ten more from ColorBrewer Dark2 / Set1: distinct on white and dark themes.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e",
    "#e6ab02", "#a6761d", "#377eb8", "#984ea3", "#a65628",
)
MISSING = "(not set)"  # a config key one run has and another lacks
CURVE_X = ("step", "epoch", "seconds")
TABLE_COLUMNS = ["run_id", "name", "status", "model", "data", "params", "flops", "epochs",
                 "train_seconds", "images_per_s", "best_val_acc", "best_epoch", "last_val_acc",
                 "test_acc", "latency_p50_ms"]


# Colours ------------------------------------------------------------------------------------

def color_slot(run_id: str) -> int:
    """The run's home slot in PALETTE: a hash of its id, the same in every process."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:4], "big") % len(PALETTE)


def run_colors(run_ids: Iterable[str]) -> dict[str, str]:
    """run id → colour. Each run gets its home slot unless a run earlier in id order took it,
    then the next free one; the answer depends on the set only, never on the order given."""
    taken: set[int] = set()
    colors = {}
    for run_id in sorted(set(run_ids)):
        slot = color_slot(run_id)
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        colors[run_id] = PALETTE[slot]
    return colors


def top_confusions(classes: list[str], matrix, k: int = 3) -> list[tuple[str, str, int, int]]:
    """The k largest off-diagonal cells: (true, predicted, images, images of that class)."""
    matrix = np.asarray(matrix)
    cells = [(int(matrix[t, p]), t, p) for t in range(len(classes)) for p in range(len(classes))
             if t != p and matrix[t, p] > 0]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [(classes[t], classes[p], n, int(matrix[t].sum())) for n, t, p in cells[:k]]


# Curves -------------------------------------------------------------------------------------

def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the first points
    are not pulled toward zero. weight 0 returns the values; non-finite values pass through
    and do not disturb the average."""
    if not 0 <= weight < 1:
        raise ValueError("the smoothing weight must be in [0, 1)")
    smoothed, last, count = [], 0.0, 0
    for value in values:
        value = float(value)
        if not math.isfinite(value):
            smoothed.append(value)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        smoothed.append(last / (1 - weight ** count))
    return smoothed


def curves(store: Store, run_ids: Sequence[str], x: str = "step",
           names: Iterable[str] | None = None) -> pd.DataFrame:
    """Metric rows of the runs as DataFrame[run_id, name, x, value], sorted by run, name and x.
    x is the step, the (fractional) epoch, or seconds since the run started."""
    if x not in CURVE_X:
        raise ValueError(f"x must be one of {', '.join(CURVE_X)}")
    frames = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        rows = store.metrics(run["run_id"], names=names) if run else []
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        if x == "seconds":
            start = run["started_at"] or frame["time"].min()
            frame["x"] = frame["time"] - start
        else:
            frame["x"] = frame[x].astype(float)
        frames.append(frame[["run_id", "name", "x", "value"]])
    if not frames:
        return pd.DataFrame(columns=["run_id", "name", "x", "value"])
    return pd.concat(frames).sort_values(["run_id", "name", "x"], kind="stable") \
        .reset_index(drop=True)


def smooth(frame: pd.DataFrame, weight: float) -> pd.DataFrame:
    """A curves frame with `value` smoothed per (run, metric) and the original kept in `raw`."""
    out = frame.copy()
    out["raw"] = out["value"]
    for _, index in out.groupby(["run_id", "name"], sort=False).groups.items():
        out.loc[index, "value"] = ema(out.loc[index, "raw"].tolist(), weight)
    return out


def best_points(frame: pd.DataFrame, name: str = "epoch/val_acc",
                mode: str = "max") -> pd.DataFrame:
    """Per run, the row of the curves frame where `name` is best (the first such row, as the
    training loop keeps the first best epoch): where to put the best-epoch marker."""
    rows = frame[frame["name"] == name]
    if rows.empty:
        return rows.copy()
    best = rows.groupby("run_id", sort=False)["value"].transform("max" if mode == "max" else "min")
    return rows[rows["value"] == best].groupby("run_id", sort=False).head(1) \
        .reset_index(drop=True)


def best_and_last(store: Store, run_id: str) -> dict:
    """Best and last validation accuracy and loss, with their epochs (None before epoch 1)."""
    rows = store.metrics(run_id, names=["epoch/val_acc", "epoch/val_loss"])
    return best_and_last_of(rows)


def best_and_last_of(rows: list[dict]) -> dict:
    acc = sorted((r["epoch"], r["value"]) for r in rows if r["name"] == "epoch/val_acc")
    loss = sorted((r["epoch"], r["value"]) for r in rows if r["name"] == "epoch/val_loss")
    result = dict.fromkeys(["best_val_acc", "best_epoch", "last_val_acc", "last_epoch",
                            "best_val_loss", "best_loss_epoch", "last_val_loss"])
    if acc:
        epoch, value = max(acc, key=lambda pair: (pair[1], -pair[0]))  # first best epoch
        result.update(best_val_acc=value, best_epoch=int(epoch), last_val_acc=acc[-1][1],
                      last_epoch=int(acc[-1][0]))
    if loss:
        epoch, value = min(loss, key=lambda pair: (pair[1], pair[0]))
        result.update(best_val_loss=value, best_loss_epoch=int(epoch), last_val_loss=loss[-1][1])
    return result


# Tables -------------------------------------------------------------------------------------

def comparison_table(runs: Sequence[dict], latency: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per run (store rows): model, size, cost and results, best and last both."""
    rows = []
    for run in runs:
        summary = run.get("summary") or {}
        rows.append({
            "run_id": run["run_id"], "name": run["name"], "status": run["status"],
            "model": run["model"], "data": run["data"], "params": summary.get("params"),
            "flops": summary.get("flops"), "epochs": run.get("epoch"),
            "train_seconds": summary.get("train_seconds"),
            "images_per_s": summary.get("train_images_per_s"),
            "best_val_acc": run.get("best_val_acc"), "best_epoch": summary.get("best_epoch"),
            "last_val_acc": run.get("last_val_acc"), "test_acc": run.get("test_acc"),
            "latency_p50_ms": (latency or {}).get(run["run_id"], {}).get("p50_ms"),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def flatten(config: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys: {"extra": {"spec": 1}} → {"extra.spec": 1}."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_diff(configs: dict[str, dict]) -> dict[str, dict]:
    """The dotted keys whose values differ between the runs' configs: key → {run_id: value}.
    A key some runs lack counts as different; those runs show MISSING."""
    flat = {run_id: flatten(config) for run_id, config in configs.items()}
    keys = list(dict.fromkeys(key for config in flat.values() for key in config))
    diff = {}
    for key in keys:
        values = {run_id: config.get(key, MISSING) for run_id, config in flat.items()}
        if not all_equal(list(values.values())):
            diff[key] = values
    return diff


def all_equal(values: list) -> bool:
    canonical = [json.dumps(v, sort_keys=True, default=str) if v is not MISSING else MISSING
                 for v in values]
    return len(set(canonical)) <= 1


def config_table(configs: dict[str, dict], differences_only: bool = False) -> pd.DataFrame:
    """Config keys (rows, in config order) × runs (columns), plus a `differs` column to
    highlight; with differences_only, the rows that differ alone."""
    flat = {run_id: flatten(config) for run_id, config in configs.items()}
    keys = list(dict.fromkeys(key for config in flat.values() for key in config))
    differing = set(config_diff(configs))
    rows = []
    for key in keys:
        if differences_only and key not in differing:
            continue
        row = {run_id: display(config.get(key, MISSING)) for run_id, config in flat.items()}
        rows.append({"key": key, **row, "differs": key in differing})
    frame = pd.DataFrame(rows, columns=["key", *configs, "differs"])
    return frame.set_index("key")


def display(value):
    """Lists and empty dicts as compact JSON, so a table cell shows them whole."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def hyperparameter_frame(runs: Sequence[dict], target: str = "test_acc") -> pd.DataFrame:
    """For parallel coordinates: the config keys that vary between the runs, and the target.
    Non-numeric columns become pandas categoricals (plot their `.cat.codes`)."""
    configs = {run["run_id"]: {k: v for k, v in run["config"].items() if k != "name"}
               for run in runs}
    diff = config_diff(configs)
    frame = pd.DataFrame({key: [values[run["run_id"]] for run in runs]
                          for key, values in diff.items()},
                         index=[run["run_id"] for run in runs])
    for column in frame.columns:
        numeric = pd.to_numeric(frame[column], errors="coerce")
        if numeric.notna().sum() == frame[column].notna().sum():
            frame[column] = numeric
        else:
            frame[column] = frame[column].map(display).astype(str).astype("category")
    frame[target] = [run.get(target) for run in runs]
    frame.index.name = "run_id"
    return frame


# Per class and confusion --------------------------------------------------------------------

def per_class_comparison(runs: Sequence[dict]) -> pd.DataFrame:
    """Long form: one row per (class, run) with support, accuracy (recall) and F1 on the test
    split, and `accuracy_diff` / `f1_diff` = run − the first run (NaN where it lacks the class).
    Pivot for a side-by-side table: frame.pivot(index="class", columns="run_id", values=...)."""
    rows = [{"class": entry["class"], "run_id": run["run_id"], "support": entry["support"],
             "accuracy": entry["accuracy"], "f1": entry["f1"]}
            for run in runs for entry in (run.get("summary") or {}).get("per_class") or []]
    frame = pd.DataFrame(rows, columns=["class", "run_id", "support", "accuracy", "f1"])
    if frame.empty:
        return frame.assign(accuracy_diff=[], f1_diff=[])
    reference = frame[frame["run_id"] == runs[0]["run_id"]].set_index("class")
    for metric in ("accuracy", "f1"):
        frame[f"{metric}_diff"] = frame[metric] - frame["class"].map(reference[metric])
    return frame


def run_confusion(run: dict) -> tuple[list[str], np.ndarray]:
    """(classes, test confusion matrix, rows = true) from a finished run's summary."""
    summary = run.get("summary") or {}
    if not summary.get("confusion"):
        raise ValueError(f"Run {run['name']} has no confusion matrix (no test split, or it "
                         "did not finish).")
    classes = [entry["class"] for entry in summary.get("per_class") or []]
    return classes, np.asarray(summary["confusion"], dtype=np.int64)


def normalise_rows(confusion) -> np.ndarray:
    """Each row as fractions of that true class (a row with no images stays zero)."""
    matrix = np.asarray(confusion, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_difference(a, b, classes_a: Sequence[str] | None = None,
                         classes_b: Sequence[str] | None = None) -> np.ndarray:
    """Row-normalised b − row-normalised a, so test sets of different sizes compare: a positive
    diagonal cell means b gets that class right more often than a."""
    a, b = np.asarray(a), np.asarray(b)
    if classes_a is not None and classes_b is not None and list(classes_a) != list(classes_b):
        raise ValueError("These runs have different classes; their confusion matrices cannot "
                         "be compared cell by cell.")
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"Confusion matrices must be square and alike (got {a.shape} and "
                         f"{b.shape}).")
    return normalise_rows(b) - normalise_rows(a)


# Trade-offs ---------------------------------------------------------------------------------

def pareto_front(points: Sequence[tuple[float, float]], minimize_x: bool = True,
                 maximize_y: bool = True) -> list[bool]:
    """Whether each (x, y) point is on the Pareto front: no other point is at least as good on
    both axes and better on one. Equal points are all on it; a point with a missing
    (None or NaN) coordinate never is."""
    def oriented(point):
        x, y = point
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            return None
        return (-x if minimize_x else x, y if maximize_y else -y)  # now larger is better

    scored = [oriented(point) for point in points]
    front = []
    for own in scored:
        if own is None:
            front.append(False)
            continue
        dominated = any(other is not None and other[0] >= own[0] and other[1] >= own[1]
                        and other != own for other in scored)
        front.append(not dominated)
    return front


def tradeoff_points(table: pd.DataFrame, x: str, y: str = "test_acc",
                    minimize_x: bool = True) -> pd.DataFrame:
    """The comparison table's run_id, name, x and y, with `pareto` marking the front."""
    frame = table[["run_id", "name", x, y]].copy()
    points = [(as_float(a), as_float(b)) for a, b in zip(frame[x], frame[y], strict=True)]
    frame["pareto"] = pareto_front(points, minimize_x=minimize_x)
    return frame


def as_float(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def inference_latency(run_id: str, batch: int = 1, repeats: int = 30,
                      store: Store | None = None, warmup: int = 5) -> dict:
    """Forward-pass time of the run's best model on the CPU with a random batch, in ms. The one
    timing function here; figures depend on the machine and its load."""
    loaded = load_model(run_id, store)
    size, channels = loaded.card["image_size"], loaded.card["in_chans"]
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        for index in range(warmup + repeats):
            start = time.perf_counter()
            loaded.model(x)
            if index >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90)),
            "batch": batch, "device": "cpu", "threads": torch.get_num_threads()}


# Download -----------------------------------------------------------------------------------

def comparison_csv(store: Store, run_ids: Sequence[str]) -> str:
    """Every metric row of the runs (run_id, run, metric, step, epoch, seconds, value), then one
    `final/…` row per result (best_val_acc, test_acc, params, …) with no step."""
    rows = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        if run is None:
            continue
        start = run["started_at"]
        for row in store.metrics(run["run_id"]):
            rows.append({"run_id": run["run_id"], "run": run["name"], "metric": row["name"],
                         "step": row["step"], "epoch": row["epoch"],
                         "seconds": row["time"] - start if start else None,
                         "value": row["value"]})
        final = comparison_table([run]).iloc[0]
        for key in ("params", "flops", "train_seconds", "images_per_s", "best_val_acc",
                    "best_epoch", "last_val_acc", "test_acc"):
            if final[key] is not None and not pd.isna(final[key]):
                rows.append({"run_id": run["run_id"], "run": run["name"],
                             "metric": f"final/{key}", "value": final[key]})
    columns = ["run_id", "run", "metric", "step", "epoch", "seconds", "value"]
    buffer = io.StringIO()
    pd.DataFrame(rows, columns=columns).to_csv(buffer, index=False)
    return buffer.getvalue()
