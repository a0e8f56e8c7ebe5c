"""`bench label-issues`: how many of the likely label errors `data label-issues` finds are
real, on a dataset with labels flipped on purpose."""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.analysis.label_issues import FAST_EPOCHS, label_issues
from core.data.build import DatasetBuilder
from core.data.dataset import list_datasets, load_dataset
from core.data.demo import DEMOS
from core.store import Store


def plant_label_errors(kind: str, name: str, rate: float, seed: int = 0) -> set[str]:
    """Dataset `name`: built-in `kind` with `rate` of its labels moved to another class at
    random (seeded). Returns the sources (`all/<index>`) of the planted errors."""
    load, classes, _ = DEMOS[kind]
    images, labels = next(iter(load().values()))
    rng = np.random.default_rng(seed)
    planted = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    noisy = labels.astype(np.int64).copy()
    noisy[planted] = (noisy[planted] + rng.integers(1, len(classes), len(planted))) % len(classes)
    if name not in list_datasets():
        builder = DatasetBuilder(name, classes, origin=f"{kind} with {rate:.0%} labels flipped")
        for index, (pixels, label) in enumerate(zip(images, noisy, strict=True)):
            builder.add(Image.fromarray(pixels), int(label), f"all/{index}")
        Store().record_dataset(builder.finish(seed=seed).summary())
    return {f"all/{index}" for index in planted}


def planted_precision(kind: str = "digits", rate: float = 0.05, folds: int = 5,
                      epochs: int = FAST_EPOCHS, seed: int = 0, progress=None) -> list[dict]:
    """Precision and recall of the flagged images against the planted errors, and precision
    among the top k (k = the number planted)."""
    name = f"bench-{kind}-noisy{round(rate * 100)}"
    planted = plant_label_errors(kind, name, rate, seed)
    result = label_issues(name, folds=folds, epochs=epochs, device="cpu", seed=seed,
                          progress=progress)
    flagged = [issue["source"] for issue in result["issues"]]
    hits = [source in planted for source in flagged]
    top = hits[:len(planted)]
    return [{"dataset": f"{kind} ({len(load_dataset(name).items)} images)",
             "planted": len(planted), "flagged": len(flagged),
             "precision": sum(hits) / max(1, len(flagged)), "recall": sum(hits) / len(planted),
             f"precision@{len(planted)}": sum(top) / len(planted),
             "folds": folds, "epochs": epochs, "out_of_fold_acc": result["out_of_fold_acc"]}]
