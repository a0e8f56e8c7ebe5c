"""`bench defaults`: our default training settings against the seed article's plain recipe.

The seed recipe is a Keras tutorial's: Adam at 1e-3, a constant rate, no weight decay, no
augmentation. Both train the same network for the same epochs at the same batch on the same
split of each real dataset available without a download; the table holds the mean test
accuracy over the seeds.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from core.config import TrainConfig
from core.data.catalog import add_demo
from core.data.dataset import DatasetError, list_datasets, load_dataset
from core.data.demo import FASHION_MNIST_DIR
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store

SEED_RECIPE = {"optimizer": "adam", "lr": 1e-3, "schedule": "constant", "weight_decay": 0.0,
               "warmup_epochs": 0.0, "label_smoothing": 0.0, "flip": "off", "pad_crop": 0,
               "jitter": 0.0, "tta_flip": False, "resize": "crop", "ema_decay": None}


@dataclass(frozen=True)
class BenchSet:
    name: str  # the dataset's name in the bench workspace
    kind: str  # the built-in (core.data.demo) it is made from
    describe: str  # for the table
    options: dict  # add_demo's options: the subset and the split
    available: Callable[[], bool] = lambda: True


BENCH_SETS = (
    BenchSet("bench-fashion-mnist", "fashion-mnist",
             "Fashion-MNIST, 500 training images a class (seeded), 2,000 official test images",
             {"per_class": 500, "test_per_class": 200, "val": 0.1, "test": 0.0},
             lambda: FASHION_MNIST_DIR.exists()),
    BenchSet("bench-digits", "digits",
             "scikit-learn digits, all 1,797 (60% train, 10% val, 30% test)",
             {"val": 0.1, "test": 0.3}),
)


def bench_sets(kind: str | None = None) -> tuple[BenchSet, ...]:
    """Every bench set, or the one made from built-in `kind` (digits, fashion-mnist)."""
    if kind is None:
        return BENCH_SETS
    picked = tuple(s for s in BENCH_SETS if kind in (s.kind, s.name))
    if not picked:
        raise ValueError(f"bench defaults has no set {kind!r}; choose "
                         f"{' or '.join(s.kind for s in BENCH_SETS)}.")
    return picked


def bench_dataset(bench_set: BenchSet) -> str:
    """The bench set's dataset in the workspace, made on first use."""
    if bench_set.name not in list_datasets():
        add_demo(bench_set.kind, bench_set.name, seed=0, **bench_set.options)
    return bench_set.name


def configs(data: str, model: str, epochs: int) -> dict[str, TrainConfig]:
    """"defaults": every setting at its default; "seed recipe": the plain Keras recipe."""
    common = {"data": data, "model": model, "epochs": epochs, "device": "cpu"}
    return {"defaults": TrainConfig(**common), "seed recipe": TrainConfig(**common | SEED_RECIPE)}


def train_acc(config: TrainConfig, seed: int, store: Store) -> dict:
    run_config = TrainConfig.from_dict(config.to_dict() | {"seed": seed})
    run_config.name = f"bench-defaults-{config.data}-seed{seed}"
    result = execute_run(new_run(run_config, store, status="running"), store)
    if result["status"] != "completed":
        raise RuntimeError(f"A bench run {result['status']}: {result.get('error')}")
    return result


def defaults_vs_seed(seeds: list[int], epochs: int, model: str = "tiny-cnn",
                     sets: tuple[BenchSet, ...] = BENCH_SETS) -> list[dict]:
    """One row per dataset: mean (and each seed's) test accuracy of both, and what the defaults
    chose from the data (flip, resize)."""
    store, rows = Store(), []
    for bench_set in sets:
        if not bench_set.available():
            continue
        data = bench_dataset(bench_set)
        load_dataset(data)
        row: dict = {"dataset": bench_set.describe, "epochs": epochs, "model": model}
        for label, config in configs(data, model, epochs).items():
            results = [train_acc(config, seed, store) for seed in seeds]
            accs = [result["test_acc"] for result in results]
            row[f"{label} mean"] = statistics.mean(accs)
            row[f"{label} per seed"] = " / ".join(f"{acc:.3f}" for acc in accs)
            if label == "defaults":
                shift = results[0].get("shift")
                row["defaults chose"] = (f"flip {'on' if results[0]['flip'] else 'off'}, "
                                         f"shift {f'{shift} px' if shift else 'off'}, "
                                         f"resize {results[0]['resize']}")
        row["defaults − seed"] = row["defaults mean"] - row["seed recipe mean"]
        rows.append(row)
    if not rows:
        raise DatasetError("No bench dataset is available (Fashion-MNIST is not installed and "
                           "scikit-learn's digits could not be loaded).")
    return rows
