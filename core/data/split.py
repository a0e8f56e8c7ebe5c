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


def grouped_split(labels: list[int], classes: list[str], groups: list[int], *, val: float,
                  test: float, seed: int) -> list[str]:
    """`stratified_split`, keeping the images of one group (copies of one picture) in one split.

    `groups[i]` names image i's group; images with a group of their own are split exactly as
    `stratified_split` splits them. Per class, whole groups are dealt out in a seeded order until
    val and test hold their share of images. A class with fewer groups than it needs splits
    (all copies of two pictures, say) is split image by image, as without groups: the caller
    counts what leaks that leaves (`leaked_groups`)."""
    if len(set(groups)) == len(groups):
        return stratified_split(labels, classes, val=val, test=test, seed=seed)
    splits = stratified_split(labels, classes, val=val, test=test, seed=seed)  # checks sizes
    rng = random.Random(seed)
    by_class: dict[int, dict[int, list[int]]] = defaultdict(dict)
    for index, (label, group) in enumerate(zip(labels, groups, strict=True)):
        by_class[label].setdefault(group, []).append(index)
    for label in sorted(by_class):
        units = list(by_class[label].values())
        if len(units) < min_class_size(val, test):
            continue  # too few distinct pictures: keep the image-by-image split
        rng.shuffle(units)
        _, n_val, n_test = split_sizes(sum(len(unit) for unit in units), val, test)
        for unit, split in zip(units, deal_units(units, n_val, n_test), strict=True):
            for index in unit:
                splits[index] = split
    return splits


def deal_units(units: list[list[int]], n_val: int, n_test: int) -> list[str]:
    """A split per unit (group of images), in order: val and test fill up to their image
    counts without overshooting; each asked-for split gets the smallest unit left if empty."""
    out, filled = [], {"val": 0, "test": 0}
    for unit in units:
        if filled["val"] + len(unit) <= n_val:
            split = "val"
        elif filled["test"] + len(unit) <= n_test:
            split = "test"
        else:
            split = "train"
        filled[split] = filled.get(split, 0) + len(unit)
        out.append(split)
    for split, wanted in (("val", n_val), ("test", n_test)):
        spare = [i for i, s in enumerate(out) if s == "train"]
        if wanted and not filled[split] and len(spare) > 1:
            out[min(spare, key=lambda i: len(units[i]))] = split
            filled[split] = 1
    return out


def leaked_groups(splits: list[str], groups: list[list[int]]) -> int:
    """How many groups (lists of indices) have members in more than one split."""
    return sum(1 for group in groups if len({splits[i] for i in group}) > 1)
