"""Built-in datasets that need no download: fashion-mnist, digits, shapes."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core.data.build import DatasetBuilder
from core.data.cache import default_image_size, write_cache
from core.data.dataset import Dataset, DatasetError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt-top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle-boot"]
SHAPE_CLASSES = ["circle", "square", "triangle"]


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        _, dtype_code, ndim = struct.unpack(">HBB", handle.read(4))
        if dtype_code != 0x08:
            raise DatasetError(f"{path} is not an unsigned-byte IDX file.")
        shape = struct.unpack(f">{ndim}I", handle.read(4 * ndim))
        return np.frombuffer(handle.read(), dtype=np.uint8).reshape(shape)


def fashion_mnist_arrays(folder: Path = FASHION_MNIST_DIR) -> dict:
    def find(stem: str) -> Path:
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.exists():
                return candidate
        raise DatasetError(
            f"Fashion-MNIST is not installed ({folder} has no {stem}). "
            "Install Debian's package: sudo apt-get install dataset-fashion-mnist"
        )

    def pair(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return (read_idx(find(f"{prefix}-images-idx3-ubyte")),
                read_idx(find(f"{prefix}-labels-idx1-ubyte")))

    return {"train": pair("train"), "test": pair("t10k")}


def digits_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 0..16 → 0..255
    return {"all": (images, digits.target.astype(np.uint8))}


def shapes_arrays(per_class: int = 100, size: int = 32, seed: int = 0) -> dict:
    """Coloured circles, squares and triangles at random places, sizes and colours."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(len(SHAPE_CLASSES)):
        for _ in range(per_class):
            images.append(draw_shape(label, size, rng))
            labels.append(label)
    return {"all": (np.stack(images), np.array(labels, dtype=np.uint8))}


def draw_shape(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    colour = tuple(int(v) for v in rng.integers(140, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.2, 0.35) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    if label == 0:
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    elif label == 1:
        draw.rectangle((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    else:
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)],
                     fill=colour)
    return np.asarray(image)


DEMOS: dict[str, tuple[Callable[[], dict], list[str], str]] = {
    "fashion-mnist": (fashion_mnist_arrays, FASHION_CLASSES,
                      "Zalando's 70,000 28x28 grayscale clothing images, 10 classes"),
    "digits": (digits_arrays, [str(d) for d in range(10)],
               "scikit-learn's 1,797 8x8 handwritten digits, 10 classes"),
    "shapes": (shapes_arrays, SHAPE_CLASSES,
               "300 generated 32x32 colour circles, squares and triangles"),
}


def stratified_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of at most `per_class` items of each label, drawn with `seed`, in file order."""
    if per_class < 1:
        raise DatasetError("--per-class must be at least 1.")
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == label))[:per_class]
             for label in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def subset_parts(parts: dict, per_class: int | None, test_per_class: int | None,
                 seed: int) -> dict:
    """The demo's parts with the training part ("train", or "all" when the source has no
    official split) cut to `per_class` images per class and the official test part to
    `test_per_class`; None keeps a part whole."""
    kept = {}
    for part, (images, labels) in parts.items():
        limit = test_per_class if part == "test" else per_class
        if limit is not None:
            index = stratified_subset(labels, limit, seed)
            images, labels = images[index], labels[index]
        kept[part] = (images, labels)
    return kept


def create_demo(kind: str, name: str, *, val: float = 0.1, test: float = 0.1, seed: int = 0,
                overwrite: bool = False, per_class: int | None = None,
                test_per_class: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                folder: Path | None = None) -> Dataset:
    """Write built-in dataset `kind` into the workspace as dataset `name`.

    `per_class` keeps a seeded, stratified subset of that many images per class of the
    training part (for a small-data experiment); `test_per_class` does the same to an official
    test set (Fashion-MNIST's 10,000), which otherwise stays whole. `folder`: where a demo
    read from files (Fashion-MNIST) finds them, when not in the usual place."""
    if kind not in DEMOS:
        raise DatasetError(f"Unknown demo {kind!r}; choose one of {', '.join(DEMOS)}.")
    load, classes, _ = DEMOS[kind]
    parts = subset_parts(load(folder) if folder else load(), per_class, test_per_class, seed)
    builder = DatasetBuilder(name, classes, origin=f"demo:{kind}", overwrite=overwrite)
    total = sum(len(labels) for _, labels in parts.values())
    done = 0
    for part, (images, labels) in parts.items():
        fixed = "test" if part == "test" else None
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            builder.add(Image.fromarray(pixels), int(label), f"{part}/{index}", split=fixed)
            done += 1
            if progress and done % 1000 == 0:
                progress(done, total)
    dataset = builder.finish(val=val, test=test, seed=seed)
    native = np.concatenate([images for images, _ in parts.values()])
    if native.shape[1] == native.shape[2] == default_image_size(dataset):  # prime the cache
        write_cache(dataset, native.shape[1], native if native.ndim == 4 else native[..., None])
    return dataset
