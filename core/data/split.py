"""The stratified, seeded train/val/test split fixed at import."""

from __future__ import annotations

import random
from collections import defaultdict

from core.data.dataset import DatasetError


def split_sizes(n: int, val: float, test: float) -> tuple[int, int, int]:
    """(train, val, test) counts for one class of n images; every asked-for split gets ≥ 1."""
    n_val = max(1, round(n * val)) if val > 0 else 0
    n_test = max(1, round(n * test)) if test > 0 else 0
    return n - n_val - n_test, n_val, n_test


def min_class_size(val: float, test: float) -> int:
    return 2 + (val > 0) + (test > 0)


def stratified_split(
    labels: list[int], classes: list[str], *, val: float, test: float, seed: int
) -> list[str]:
    """Assign "train" / "val" / "test" to each index, per class, reproducibly for a seed."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 0.9):
        raise DatasetError(
            f"val={val} and test={test} leave too little to train on; "
            "use fractions such as 0.1 and 0.1."
        )
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    check_class_sizes(by_class, classes, val, test)
    rng = random.Random(seed)
    splits = ["train"] * len(labels)
    for label in sorted(by_class):
        indices = by_class[label]
        rng.shuffle(indices)
        _, n_val, n_test = split_sizes(len(indices), val, test)
        for index in indices[:n_val]:
            splits[index] = "val"
        for index in indices[n_val:n_val + n_test]:
            splits[index] = "test"
    return splits


def check_class_sizes(
    by_class: dict[int, list[int]], classes: list[str], val: float, test: float
) -> None:
    present = [label for label in range(len(classes)) if by_class.get(label)]
    if len(present) < 2:
        found = ", ".join(repr(classes[i]) for i in present) or "none"
        raise DatasetError(
            f"A classifier needs at least two classes with images; found {found}. "
            "Put each class's images in its own folder (class_name/image.jpg)."
        )
    need = min_class_size(val, test)
    small = [f"{classes[i]!r} ({len(by_class.get(i, []))})" for i in range(len(classes))
             if len(by_class.get(i, [])) < need]
    if small:
        raise DatasetError(
            f"These classes have too few images to split into train/val/test: {', '.join(small)}. "
            f"Each class needs at least {need}; add images, remove the class, "
            "or lower the val/test fractions."
        )
