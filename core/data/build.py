"""Write a dataset folder: images in, manifest out, all or nothing.

Both the uploader (ingest.py) and the built-in datasets (demo.py) go through
`DatasetBuilder`, so every dataset on disk has the same shape. Images are
written into a hidden temporary folder that is renamed into place only when the
split and manifest are done; a failed import leaves nothing behind.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from PIL import Image

from core.data.dataset import (
    MANIFEST,
    Dataset,
    DatasetError,
    Item,
    dataset_folder,
)
from core.data.images import png_bytes
from core.data.split import grouped_split, leaked_groups, stratified_split
from core.durable import fsync_directory, write_json_atomic
from core.workspace import datasets_dir, process_alive

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DatasetBuilder:
    def __init__(self, name: str, classes: list[str], *, origin: str = "upload",
                 overwrite: bool = False, max_bytes: int | None = None) -> None:
        self.final = dataset_folder(name)
        if self.final.exists() and not overwrite:
            raise DatasetError(
                f"A dataset named {name!r} already exists. Choose another name or delete it first."
            )
        self.name, self.classes, self.origin = name, list(classes), origin
        remove_abandoned_imports()
        self.tmp = datasets_dir() / f".importing-{name}-{os.getpid()}-{time.time_ns()}"
        self.tmp.mkdir(parents=True)
        self.items: list[Item] = []
        self.dropped: list[dict] = []
        self.fixed_splits: list[str | None] = []
        self.all_gray = True
        self.max_bytes = max_bytes  # image files this import may write, None: no cap
        self.bytes_written = 0
        self._hash = hashlib.sha256()

    def add(self, image: Image.Image, label: int, source: str = "",
            split: str | None = None) -> None:
        """Add one decoded image (mode "L" or "RGB"); `split` pins it (official test sets)."""
        if image.mode not in ("L", "RGB"):
            raise ValueError(f"convert images to L or RGB before adding (got {image.mode})")
        self.add_file(png_bytes(image), ".png", image.mode, image.size, label, source, split)

    def add_file(self, data: bytes, extension: str, mode: str, size: tuple[int, int],
                 label: int, source: str = "", split: str | None = None) -> None:
        """Add one image file as it will be stored: a cleaned PNG, or an upload's own bytes that
        decode (images.decode_upload) to mode `mode` ("L" or "RGB") at `size` as they are."""
        self.all_gray &= mode == "L"
        relative = f"images/{label}/{len(self.items):06d}{extension}"
        if self.max_bytes is not None and self.bytes_written + len(data) > self.max_bytes:
            raise DatasetError(
                f"The cleaned images would take more than {size_text(self.max_bytes)} on disk "
                f"(after {len(self.items):,} images), over the import limit. Downscale "
                "the images or split them into smaller datasets."
            )
        path = self.tmp / relative
        with disk_full_as_dataset_error():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.bytes_written += len(data)
        self._hash.update(f"{label}:".encode() + hashlib.sha256(data).digest())
        width, height = size
        self.items.append(Item(relative, label, "train", source, width, height))
        self.fixed_splits.append(split)

    def drop(self, file: str, reason: str) -> None:
        self.dropped.append({"file": file, "reason": reason})

    def finish(self, *, val: float = 0.1, test: float = 0.1, seed: int = 0, layout: str = "",
               notes: list[str] | None = None, duplicates: list[dict] | None = None) -> Dataset:
        """Split and write. `duplicates` ([{items: [index], kind}]) are kept in one split each
        where the split is drawn; `notes` and `layout` go into the manifest as they are."""
        duplicates = duplicates or []
        try:
            leaks = self._assign_splits(val, test, seed, [group["items"] for group in duplicates])
            notes = list(notes or []) + leak_note(leaks)
            dataset = Dataset(
                name=self.name, classes=self.classes, channels=1 if self.all_gray else 3,
                items=self.items, seed=seed, created=time.time(),
                content_hash=self._hash.hexdigest()[:16], dropped=self.dropped, origin=self.origin,
                layout=layout, notes=notes, duplicates=duplicates, leaks=leaks,
            )
            with disk_full_as_dataset_error():
                self._move_into_place(dataset)
            return dataset
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _assign_splits(self, val: float, test: float, seed: int,
                       groups: list[list[int]]) -> dict:
        """Pinned items keep their split; the others are split stratified and seeded, carving
        only the splits the source does not give. Returns the leak counts: duplicate groups
        spread over several splits, now and had the split ignored the groups."""
        free = [i for i, split in enumerate(self.fixed_splits) if split is None]
        labels = [self.items[i].label for i in free]
        given = set(self.fixed_splits)
        val = 0.0 if "val" in given else val  # the source has its own: carve only the rest
        test = 0.0 if "test" in given else test
        group_of = {i: number for number, group in enumerate(groups) for i in group}
        tags = [group_of.get(i, -1 - i) for i in free]
        plain = splits = ["train"] * len(free)
        if free and (val or test):  # items added with a pinned split need none
            # only the classes among the free items: one the source gives in test/ alone is
            # reported by the layout, not refused here
            present = sorted(set(labels))
            position = {label: index for index, label in enumerate(present)}
            local = [position[label] for label in labels]
            names = [self.classes[label] for label in present]
            plain = stratified_split(local, names, val=val, test=test, seed=seed)
            splits = grouped_split(local, names, tags, val=val, test=test, seed=seed)
        for index, split in enumerate(self.fixed_splits):
            self.items[index].split = split or "train"
        ungrouped = [item.split for item in self.items]
        for index, split, first in zip(free, splits, plain, strict=True):
            self.items[index].split = split
            ungrouped[index] = first
        final = [item.split for item in self.items]
        return {"in_split": leaked_groups(final, groups),
                "without_grouping": leaked_groups(ungrouped, groups)} if groups else {}

    def _move_into_place(self, dataset: Dataset) -> None:
        write_json_atomic(self.tmp / MANIFEST, asdict(dataset))
        if self.final.exists():
            shutil.rmtree(self.final)
        Path(self.tmp).rename(self.final)
        fsync_directory(self.final.parent)  # the rename itself, on disk


def leak_note(leaks: dict) -> list[str]:
    """The split's leaks in words: copies of one picture in more than one split."""
    if not leaks.get("without_grouping") and not leaks.get("in_split"):
        return []
    now = leaks["in_split"]
    left = ("none is left" if not now else
            f"{now} group(s) still span splits (the upload's own splits, or a class with too "
            "few distinct pictures); `data dedupe` removes the extra copies")
    return [f"A split ignoring duplicates would have put {leaks['without_grouping']} group(s) "
            f"of copies in more than one split (leaks that inflate the score); {left}."]


def remove_abandoned_imports() -> None:
    """Delete the temp folders of imports whose process was killed (no `finally` ran): they
    are named .importing-<name>-<pid>-<ns>, and only a dead pid's folder goes."""
    for folder in datasets_dir().glob(".importing-*"):
        parts = folder.name.rsplit("-", 2)
        if len(parts) == 3 and parts[1].isdigit() and not process_alive(int(parts[1])):
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def disk_full_as_dataset_error():
    """A full disk (or quota) is something a person fixes: say so, not `[Errno 28]`. The caller
    aborts the builder, so the partly written import goes too."""
    try:
        yield
    except OSError as error:
        if error.errno not in NO_SPACE:
            raise
        raise DatasetError(
            f"The disk holding the workspace ({datasets_dir().parent}) is full "
            f"({error.strerror or 'no space left'}); nothing was imported. Free some space, "
            "for example by deleting old runs or datasets, or import a smaller dataset."
        ) from None


def size_text(size: int) -> str:
    """Bytes as a person reads them in a message: "4.0 GiB", "320 MiB"."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"
