"""Small datasets the data-fit tests build: a mirror-sensitive one (each class the other's
mirror image)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.data.build import DatasetBuilder


def arrows(per_class: int = 60, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes, each the other's mirror image: a bar near the left edge with a notch
    (`left`), the same mirrored (`right`); noise and a small jitter of place."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in (0, 1):
        for _ in range(per_class):
            image = rng.integers(0, 40, (size, size)).astype(np.uint8)
            x = int(rng.integers(1, 4))
            image[2:size - 2, x:x + 3] = 230
            image[2:5, x:x + 8] = 230
            images.append(image if label == 0 else image[:, ::-1])
            labels.append(label)
    return np.stack(images)[..., None], np.array(labels)


def arrow_dataset(name: str = "arrows") -> None:
    images, labels = arrows(per_class=40)
    builder = DatasetBuilder(name, ["left", "right"], origin="test")
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        builder.add(Image.fromarray(pixels[..., 0]), int(label), f"{index}.png")
    builder.finish(val=0.2, test=0.2, seed=0)


def imbalanced_dataset(name: str = "skewed", big: int = 300, small: int = 30) -> None:
    """Two overlapping classes of noisy gray squares, `big` a little darker than `small` (the
    brightness of each image varies more than the classes differ), ten times as many of it: a
    plain loss learns to answer `big`."""
    rng = np.random.default_rng(0)
    builder = DatasetBuilder(name, ["big", "small"], origin="test")
    for index, label in enumerate([0] * big + [1] * small):
        level = (100 if label == 0 else 125) + rng.normal(0, 20)  # each image's own brightness
        pixels = np.clip(rng.normal(level, 10, (12, 12)), 0, 255).astype(np.uint8)
        builder.add(Image.fromarray(pixels), label, f"{index}.png")
    builder.finish(val=0.2, test=0.3, seed=0)
