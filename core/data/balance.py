"""Class imbalance: when it is worth a warning, and the two remedies a run can ask for
(`balance`: a class-weighted loss, or a sampler that draws every class equally often)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from core.config import BALANCES
from core.data.dataset import Dataset

IMBALANCE_RATIO = 3.0  # the largest class over the smallest: above this, say so
__all__ = ["BALANCES", "IMBALANCE_RATIO", "imbalance", "class_weights", "sample_weights",
           "balanced_accuracy"]


def imbalance(dataset: Dataset) -> dict | None:
    """{ratio, largest, smallest, counts, message} when the training split's largest class has
    over IMBALANCE_RATIO times the images of its smallest, else None."""
    train = [item.label for item in dataset.items if item.split == "train"] or \
        [item.label for item in dataset.items]
    by_label = Counter(train)
    counts = {name: by_label.get(index, 0) for index, name in enumerate(dataset.classes)}
    if len(counts) < 2:
        return None
    largest = max(counts, key=counts.get)
    smallest = min(counts, key=counts.get)
    ratio = counts[largest] / max(1, counts[smallest])
    if ratio <= IMBALANCE_RATIO:
        return None
    message = (f"classes are imbalanced: `{largest}` has {counts[largest]:,} training images, "
               f"`{smallest}` {counts[smallest]:,} ({ratio:.1f}×); a plain loss favours the "
               "large classes. Train with balance weights (a class-weighted loss) or sampler "
               "(every class drawn equally often), and judge by balanced accuracy")
    return {"ratio": ratio, "largest": largest, "smallest": smallest, "counts": counts,
            "message": message}


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class loss weights n / (k · n_c) (scikit-learn's "balanced"): every class adds the
    same total to the loss; a class with no training images gets weight 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def sample_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-image draw weights 1 / n_c: a sampler with replacement then draws each class about
    equally often (torch's WeightedRandomSampler recipe)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return (1.0 / counts[labels]).astype(np.float32)


def balanced_accuracy(confusion: np.ndarray) -> float | None:
    """The mean per-class recall over the classes present (rows: true labels)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    support = confusion.sum(axis=1)
    present = support > 0
    if not present.any():
        return None
    return float((np.diag(confusion)[present] / support[present]).mean())
