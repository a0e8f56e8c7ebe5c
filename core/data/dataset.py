"""A dataset on disk: a folder of cleaned images plus `manifest.json`.

Layout under `<workspace>/datasets/<name>/`:
    manifest.json             classes, channels, split, one entry per image
    images/<label>/<n>.<ext>  every kept image, checked at import: the upload's own bytes
                              (.jpg, .png, .webp) when they decode to RGB or L as they are,
                              else a cleaned PNG
    cache/                    decode-once uint8 arrays per image size (see cache.py)

The manifest is written last and atomically, so a folder without one is an import
that did not finish and is never listed.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.durable import write_json_atomic
from core.workspace import check_name, datasets_dir

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"


class DatasetError(ValueError):
    """A dataset problem a person can fix; the message says how."""


@dataclass
class Item:
    file: str  # relative to the dataset folder, e.g. "images/3/000042.jpg"
    label: int
    split: str
    source: str = ""  # where it came from in the upload, for reports
    width: int = 0
    height: int = 0


@dataclass
class Dataset:
    name: str
    classes: list[str]
    channels: int  # 1 when every image was grayscale, else 3
    items: list[Item] = field(default_factory=list)
    seed: int = 0
    created: float = 0.0
    content_hash: str = ""
    dropped: list[dict] = field(default_factory=list)  # [{file, reason}] from the import
    origin: str = ""  # "upload", "demo:fashion-mnist", ...
    layout: str = ""  # how the upload was read: class-folders, split-folders, file-names, csv
    notes: list[str] = field(default_factory=list)  # what the import decided that a person
    # should know: a split drawn from train, classes missing from a split, leaks
    duplicates: list[dict] = field(default_factory=list)  # [{items: [index], kind}] at import
    leaks: dict = field(default_factory=dict)  # {"in_split": n, "without_grouping": n}

    @property
    def folder(self) -> Path:
        return dataset_folder(self.name)

    def counts(self) -> dict[str, int]:
        by_label = Counter(item.label for item in self.items)
        return {cls: by_label.get(i, 0) for i, cls in enumerate(self.classes)}

    def split_counts(self) -> dict[str, int]:
        by_split = Counter(item.split for item in self.items)
        return {split: by_split.get(split, 0) for split in SPLITS}

    def class_split_counts(self) -> dict[str, dict[str, int]]:
        table = {cls: dict.fromkeys(SPLITS, 0) for cls in self.classes}
        for item in self.items:
            table[self.classes[item.label]][item.split] += 1
        return table

    def size_stats(self) -> dict[str, float]:
        widths = [item.width for item in self.items] or [0]
        heights = [item.height for item in self.items] or [0]
        return {
            "min_width": min(widths), "max_width": max(widths),
            "min_height": min(heights), "max_height": max(heights),
            "mean_width": sum(widths) / len(widths), "mean_height": sum(heights) / len(heights),
        }

    def indices(self, split: str) -> list[int]:
        return [i for i, item in enumerate(self.items) if item.split == split]

    def summary(self) -> dict:
        """The JSON object the CLI prints for an import (DESIGN.md, Command line)."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "channels": self.channels,
            "counts": self.counts(),
            "kept": len(self.items),
            "dropped": list(self.dropped),
            "splits": self.split_counts(),
            "image_size": self.size_stats(),
            "content_hash": self.content_hash,
            "origin": self.origin,
            "layout": self.layout,
            "notes": list(self.notes),
            "duplicates": self.duplicate_groups(),
            "leaks": dict(self.leaks),
        }

    def duplicate_groups(self) -> list[dict]:
        """[{files: [source names], kind, splits}] for each group of copies found at import."""
        return [{"files": [self.items[i].source or self.items[i].file for i in group["items"]],
                 "kind": group["kind"],
                 "splits": [self.items[i].split for i in group["items"]]}
                for group in self.duplicates]

    def show(self) -> dict:
        """Everything `data show` prints: the summary, counts per class and split, every item."""
        return self.summary() | {
            "class_splits": self.class_split_counts(),
            "items": [{"file": item.file, "source": item.source,
                       "label": self.classes[item.label], "split": item.split}
                      for item in self.items],
        }

    def save(self) -> None:
        """Write the manifest atomically (temp file, fsync, rename)."""
        data = asdict(self)
        write_json_atomic(self.folder / MANIFEST, data)


def dataset_folder(name: str) -> Path:
    return datasets_dir() / check_name(name, "dataset name")


def load_dataset(name: str) -> Dataset:
    path = dataset_folder(name) / MANIFEST
    if not path.exists():
        raise DatasetError(
            f"There is no dataset named {name!r}. Import one first "
            "(python -m core data import PATH --name NAME, or the Datasets page)."
        )
    data = json.loads(path.read_text())
    data["items"] = [Item(**item) for item in data["items"]]
    return Dataset(**data)


def list_datasets() -> list[str]:
    # pathlib's "*" matches hidden names too: an import killed between writing its manifest
    # and renaming its hidden temp folder must not be listed
    return sorted(p.parent.name for p in datasets_dir().glob(f"*/{MANIFEST}")
                  if not p.parent.name.startswith("."))


def delete_dataset(name: str) -> None:
    folder = dataset_folder(name)
    if not folder.exists():
        raise DatasetError(f"There is no dataset named {name!r} to delete.")
    shutil.rmtree(folder)
