"""Write a dataset folder: images in, manifest out, all or nothing.

Both the uploader (ingest.py) and the built-in datasets (demo.py) go through
`DatasetBuilder`, so every dataset on disk has the same shape. Images are
written into a hidden temporary folder that is renamed into place only when the
split and manifest are done; a failed import leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from PIL import Image

from core.data.dataset import (
    MANIFEST,
    Dataset,
    DatasetError,
    Item,
    dataset_folder,
    write_json_atomic,
)
from core.data.split import stratified_split
from core.workspace import datasets_dir


class DatasetBuilder:
    def __init__(self, name: str, classes: list[str], *, origin: str = "upload",
                 overwrite: bool = False) -> None:
        self.final = dataset_folder(name)
        if self.final.exists() and not overwrite:
            raise DatasetError(
                f"A dataset named {name!r} already exists. Choose another name or delete it first."
            )
        self.name, self.classes, self.origin = name, list(classes), origin
        self.tmp = datasets_dir() / f".importing-{name}-{time.time_ns()}"
        self.tmp.mkdir(parents=True)
        self.items: list[Item] = []
        self.dropped: list[dict] = []
        self.fixed_splits: list[str | None] = []
        self.all_gray = True
        self._hash = hashlib.sha256()

    def add(self, image: Image.Image, label: int, source: str = "",
            split: str | None = None) -> None:
        """Add one decoded image (mode "L" or "RGB"); `split` pins it (official test sets)."""
        if image.mode not in ("L", "RGB"):
            raise ValueError(f"convert images to L or RGB before adding (got {image.mode})")
        self.all_gray &= image.mode == "L"
        relative = f"images/{label}/{len(self.items):06d}.png"
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        data = buffer.getvalue()
        path = self.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._hash.update(f"{label}:".encode() + hashlib.sha256(data).digest())
        width, height = image.size
        self.items.append(Item(relative, label, "train", source, width, height))
        self.fixed_splits.append(split)

    def drop(self, file: str, reason: str) -> None:
        self.dropped.append({"file": file, "reason": reason})

    def finish(self, *, val: float = 0.1, test: float = 0.1, seed: int = 0) -> Dataset:
        try:
            self._assign_splits(val, test, seed)
            dataset = Dataset(
                name=self.name, classes=self.classes, channels=1 if self.all_gray else 3,
                items=self.items, seed=seed, created=time.time(),
                content_hash=self._hash.hexdigest()[:16], dropped=self.dropped, origin=self.origin,
            )
            self._move_into_place(dataset)
            return dataset
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _assign_splits(self, val: float, test: float, seed: int) -> None:
        free = [i for i, split in enumerate(self.fixed_splits) if split is None]
        labels = [self.items[i].label for i in free]
        if any(split == "test" for split in self.fixed_splits):
            test = 0.0  # the source has its own test set; only carve val from the rest
        splits = []
        if free:  # items added with a pinned split need none
            splits = stratified_split(labels, self.classes, val=val, test=test, seed=seed)
        for index, split in zip(free, splits, strict=True):
            self.items[index].split = split
        for index, split in enumerate(self.fixed_splits):
            if split is not None:
                self.items[index].split = split

    def _move_into_place(self, dataset: Dataset) -> None:
        write_json_atomic(self.tmp / MANIFEST, asdict(dataset))
        if self.final.exists():
            shutil.rmtree(self.final)
        Path(self.tmp).rename(self.final)
