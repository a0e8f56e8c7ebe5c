"""Dataset operations as the CLI and the pages use them: import, demo, list, delete.

Each keeps the store's dataset table in step with the folders on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from core.data.cache import load_cache
from core.data.dataset import Dataset, delete_dataset, list_datasets, load_dataset
from core.data.demo import DEMOS, create_demo
from core.data.ingest import import_dataset, import_entries
from core.store import Store
from core.workspace import next_free_name

Progress = Callable[[int, int], None] | None


def import_path(source: str | Path | BinaryIO, name: str, *, val: float = 0.1, test: float = 0.1,
                seed: int = 0, image_size: int | None = None, progress: Progress = None,
                label_pattern: str | None = None) -> Dataset:
    """Import a zip, folder or CSV (or an open zip file, such as an upload) as dataset `name`;
    `label_pattern` (a regex, first group) reads labels from the file names."""

    dataset = import_dataset(source, name, val=val, test=test, seed=seed, progress=progress,
                             label_pattern=label_pattern)
    return registered(dataset, image_size)


def import_uploads(entries: Iterable[tuple[str, bytes]], name: str, *, val: float = 0.1,
                   test: float = 0.1, seed: int = 0, progress: Progress = None,
                   label_pattern: str | None = None) -> Dataset:
    """Import in-memory files named `class/file.ext` (a folder upload, or classes built one by
    one in the dashboard)."""

    dataset = import_entries(entries, name, val=val, test=test, seed=seed, progress=progress,
                             label_pattern=label_pattern)
    return registered(dataset, None)


def add_demo(kind: str, name: str, *, val: float = 0.1, test: float = 0.1, seed: int = 0,
             overwrite: bool = False, image_size: int | None = None,
             per_class: int | None = None, test_per_class: int | None = None,
             progress: Progress = None) -> Dataset:
    dataset = create_demo(kind, name, val=val, test=test, seed=seed, overwrite=overwrite,
                          per_class=per_class, test_per_class=test_per_class,
                          progress=progress)
    return registered(dataset, image_size)


def registered(dataset: Dataset, image_size: int | None) -> Dataset:
    if image_size:
        load_cache(dataset, image_size)
    Store().record_dataset(dataset.summary())
    return dataset


def show(name: str) -> dict:
    """`data show`: classes, counts per split, layout, duplicates and every item."""
    return load_dataset(name).show()


def summaries() -> list[dict]:
    """Every dataset's summary, from the manifests on disk (the source of truth)."""
    return [load_dataset(name).summary() for name in list_datasets()]


def remove(name: str) -> None:
    delete_dataset(name)
    Store().forget_dataset(name)


def free_version_name(name: str) -> str:
    """The next free name for a new version of dataset `name`: pets → pets-v2, pets-v2 → pets-v3
    (or the first free one after it)."""
    stem, _, number = name.rpartition("-v")
    base = stem if stem and number.isdigit() else name
    return next_free_name(base + "-v{n}", list_datasets(), start=2)


def demo_kinds() -> dict[str, str]:
    """Built-in dataset kind → one-line description."""
    return {kind: description for kind, (_, _, description) in DEMOS.items()}
