"""Import an upload — a zip, a folder, a CSV of `path,label`, or files in memory — as a dataset.

Every source goes through one pipeline:
  1. enumerate  archive.py lists entries (name, declared size, reader); nothing is read yet
  2. check      caps on count and total size refuse the whole upload; per-entry rules
                (unsafe path, link, junk, not an image, too big, over-compressed) drop one
  3. lay out    each entry's label and given split (layouts.py: class folders, split folders,
                labels in file names, a CSV of labels), decided before anything is stored
  4. decode     read each entry under its cap, decode in memory on every core (images.py,
                parallel.py); store the upload's own bytes when it needs no conversion, else
                a cleaned PNG; each decoded image leaves a fingerprint for the duplicate finder
  5. finish     whole-set rules, duplicate groups (duplicates.py), then DatasetBuilder splits
                (keeping each group in one split) and writes the manifest
Nothing is extracted to disk: the only files written are the builder's checked images.
"""

from __future__ import annotations

import lzma
import os
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from core.data.archive import (
    Entry,
    csv_entries,
    folder_entries,
    junk_reason,
    memory_entries,
    open_zip,
    take,
    zip_entries,
)
from core.data.build import DatasetBuilder, size_text
from core.data.dataset import Dataset, DatasetError
from core.data.duplicates import collect, find_duplicates
from core.data.images import IMAGE_EXTENSIONS, ImageRejected
from core.data.layouts import Layout, Planned, read_layout
from core.data.parallel import WorkerCrashed, ordered_map, store_ready
from core.data.split import stratified_split
from core.workspace import check_name

MiB = 1 << 20
GiB = 1 << 30
ARCHIVE_EXTENSIONS = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"})
# A high ratio on a small member cannot fill anything, and flat BMP / TIFF images
# legitimately deflate 500:1, so the ratio rule only applies above this size.
RATIO_FLOOR_BYTES = 1 * MiB
PARALLEL_MIN_FILES = 256  # below this, starting decoding processes costs more than it saves
READ_ERRORS = (OSError, EOFError, RuntimeError, ValueError, NotImplementedError,
               zipfile.BadZipFile, zlib.error, lzma.LZMAError, struct.error)
Progress = Callable[[int, int], None]


@dataclass
class IngestLimits:
    max_entries: int = 200_000  # files in one upload, junk included
    max_total_bytes: int = 4 * GiB  # declared uncompressed size of the whole upload
    max_ratio: float = 200  # uncompressed / compressed size of one zip member
    max_file_bytes: int = 64 * MiB  # one file, uncompressed
    max_pixels: int = 40_000_000  # one image, width x height, checked from its header
    # Image files written for one upload: a well-compressed JPEG that needs converting can
    # become a PNG many times its size, so the input caps alone do not bound what is written.
    max_written_bytes: int = 16 * GiB
    min_images_kept: int = 2  # usable images needed for the import to succeed


def import_dataset(source: str | Path | BinaryIO, name: str, *, val: float = 0.1,
                   test: float = 0.1, seed: int = 0, limits: IngestLimits | None = None,
                   progress: Progress | None = None, overwrite: bool = False,
                   label_pattern: str | None = None) -> Dataset:
    """Import a .zip (path or binary file object), a folder, or a .csv of path,label rows.
    `label_pattern`: a regex whose first group reads the label from each file name."""
    limits = limits or IngestLimits()
    check_request(name, val, test)
    with open_source(source, limits) as (what, entries):
        return ingest(entries, what, name, val=val, test=test, seed=seed, limits=limits,
                      progress=progress, overwrite=overwrite, label_pattern=label_pattern)


def import_entries(entries: Iterable[tuple[str, bytes]], name: str, *, val: float = 0.1,
                   test: float = 0.1, seed: int = 0, limits: IngestLimits | None = None,
                   progress: Progress | None = None, overwrite: bool = False,
                   label_pattern: str | None = None) -> Dataset:
    """Import files already in memory: ("class_name/file.jpg", bytes) pairs."""
    limits = limits or IngestLimits()
    check_request(name, val, test)
    return ingest(memory_entries(entries), "The upload", name, val=val, test=test, seed=seed,
                  limits=limits, progress=progress, overwrite=overwrite,
                  label_pattern=label_pattern)


def check_request(name: str, val: float, test: float) -> None:
    """Fail on a bad name or split before any work; the split rule itself lives in split.py."""
    try:
        check_name(name, "dataset name")
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    try:
        stratified_split([0] * 10 + [1] * 10, ["a", "b"], val=val, test=test, seed=0)
    except TypeError:
        raise DatasetError(f"val={val!r} and test={test!r} must be fractions such as 0.1.") \
            from None


@contextmanager
def open_source(source: str | Path | BinaryIO, limits: IngestLimits,
                ) -> Iterator[tuple[str, Iterable[Entry]]]:
    if hasattr(source, "read"):  # an uploaded zip still in memory
        with open_zip(source, "The uploaded zip", limits.max_entries) as archive:
            yield "The uploaded zip", zip_entries(archive)
        return
    path = Path(source).expanduser()
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{source!s} cannot be opened ({exc}).") from None
    if is_dir:
        yield f"The folder {path.name!r}", folder_entries(path)
    elif not is_file:
        raise DatasetError(f"{path} does not exist. Check the path and try again.")
    elif path.suffix.lower() == ".csv":
        yield path.name, csv_entries(path, limits.max_file_bytes)
    elif path.suffix.lower() == ".zip":
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise DatasetError(f"{path.name} cannot be opened ({exc.strerror}).") from None
        with handle, open_zip(handle, path.name, limits.max_entries) as archive:
            yield path.name, zip_entries(archive)
    else:
        raise DatasetError(
            f"{path.name} is not a .zip, a .csv or a folder. Upload a zip of class folders "
            "(class_name/image.jpg), the folder itself, or a CSV of path,label rows."
        )


def ingest(entries: Iterable[Entry], what: str, name: str, *, val: float, test: float,
           seed: int, limits: IngestLimits, progress: Progress | None,
           overwrite: bool, label_pattern: str | None = None) -> Dataset:
    """The one pipeline: check every entry, lay out labels and splits, decode, build."""
    listed = take(entries, limits.max_entries, what)
    check_total_size(listed, what, limits)
    layout = plan_layout(listed, limits, label_pattern)
    plan, dropped = layout.planned, layout.dropped
    classes = sorted({planned.label for planned in plan})
    check_enough(Counter(planned.label for planned in plan), dropped, limits, what,
                 "image files")
    builder = DatasetBuilder(name, classes, overwrite=overwrite,
                             max_bytes=limits.max_written_bytes)
    try:
        for item in dropped:
            builder.drop(item["file"], item["reason"])
        kept, prints = decode_into(builder, plan, classes, limits, progress)
        check_enough(kept, builder.dropped, limits, what, "usable images")
        duplicates = find_duplicates(collect(prints))
        notes = layout.notes + drawn_split_notes(layout, builder.fixed_splits, val, test, seed)
        try:
            return builder.finish(val=val, test=test, seed=seed, layout=layout.kind,
                                  notes=notes + leak_notes(builder, duplicates),
                                  duplicates=duplicates)
        except DatasetError as exc:
            raise DatasetError(str(exc) + drop_summary(builder.dropped)) from None
    except BaseException:
        builder.abort()  # the builder's hidden temp folder goes; nothing is left behind
        raise


def check_total_size(entries: list[Entry], what: str, limits: IngestLimits) -> None:
    """Refuse the whole upload from the declared sizes, before a single byte is read."""
    total = sum(max(entry.size, 0) for entry in entries)
    if total > limits.max_total_bytes:
        raise DatasetError(
            f"{what} holds {size_text(total)} of files (uncompressed), over the import limit "
            f"of {size_text(limits.max_total_bytes)} (a zip bomb looks like this too). "
            "Split it into smaller datasets, or downscale the images first."
        )


def plan_layout(entries: list[Entry], limits: IngestLimits, label_pattern: str | None = None,
                ) -> Layout:
    """The label (and given split) of every entry worth decoding, {file, reason} for the rest.
    CSV files are set aside first: one of them may hold the labels."""
    tables = [entry for entry in entries if is_table(entry)]
    others = [entry for entry in entries if not is_table(entry)]
    candidates, dropped = screen_entries(others, limits)
    layout = read_layout(candidates, tables, lambda table: read_table(table, limits),
                         label_pattern)
    if layout.kind != "csv":
        dropped += [{"file": table.name, "reason": "not an image file (.csv)"}
                    for table in tables]
    layout.dropped = dropped + layout.dropped
    return layout


def assign_classes(entries: list[Entry]) -> tuple[list[tuple[Entry, str]], list[dict]]:
    """(entry, class) as the upload's layout reads it (no CSV), {file, reason} for the rest;
    for uploads to classify, whose labels are optional."""
    try:
        layout = read_layout(entries, [], lambda table: b"")
    except DatasetError:  # unlabelled split folders: nothing to read a label from
        return [], []
    return [(planned.entry, planned.label) for planned in layout.planned], layout.dropped


def is_table(entry: Entry) -> bool:
    return (entry.label is None and not entry.problem and entry.name.lower().endswith(".csv")
            and not junk_reason(entry.name))


def read_table(entry: Entry, limits: IngestLimits) -> bytes:
    """A CSV member of the upload, under the per-file cap."""
    if entry.size > limits.max_file_bytes:
        raise ValueError(f"{entry.name} is over the per-file limit")
    try:
        return read_entry(entry)
    except ImageRejected as exc:
        raise ValueError(exc.reason) from None


def drawn_split_notes(layout: Layout, fixed: list[str | None], val: float, test: float,
                      seed: int) -> list[str]:
    """Say which splits were drawn from the training images, when the upload gives splits."""
    if not any(planned.split for planned in layout.planned):
        return []
    notes = []
    for split, share, folder in (("val", val, "val/ (or valid/, validation/)"),
                                 ("test", test, "test/")):
        if split in fixed:
            continue
        if share:
            notes.append(f"No {folder} images in the upload: the {split} split is drawn from "
                         f"the training images ({share:.0%} per class, stratified, seed {seed}).")
        else:
            notes.append(f"No {folder} images in the upload and a {split} share of 0: the "
                         f"dataset has no {split} split.")
    return notes


def leak_notes(builder: DatasetBuilder, duplicates: list[dict]) -> list[str]:
    if not duplicates:
        return []
    copies = sum(len(group["items"]) - 1 for group in duplicates)
    exact = sum(group["kind"] == "exact" for group in duplicates)
    return [f"{len(duplicates)} group(s) of duplicate images ({exact} exact, "
            f"{len(duplicates) - exact} near; {copies} extra copies). `data dedupe` saves a "
            "version without the extra copies."]


def screen_entries(entries: list[Entry], limits: IngestLimits) -> tuple[list[Entry], list[dict]]:
    """The entries worth decoding, and {file, reason} for each of the others."""
    candidates, dropped = [], []
    for entry in entries:
        reason = entry_reason(entry, limits)
        if reason:
            dropped.append({"file": entry.name, "reason": reason})
        else:
            candidates.append(entry)
    return candidates, dropped


def entry_reason(entry: Entry, limits: IngestLimits) -> str:
    """Why `entry` is dropped without being read, or "" to keep it."""
    if entry.problem:
        return entry.problem
    base = entry.name.rsplit("/", 1)[-1]
    junk = junk_reason(base if entry.label is not None else entry.name)
    if junk:
        return junk
    extension = os.path.splitext(base)[1].lower()
    if extension in ARCHIVE_EXTENSIONS:
        return "nested archive (unpack it and upload its images instead)"
    if extension not in IMAGE_EXTENSIONS:
        return f"not an image file ({extension or 'no extension'})"
    if entry.size <= 0:
        return "empty file (0 bytes)"
    if entry.size > limits.max_file_bytes:
        return (f"file is {entry.size / MiB:.0f} MiB, over the limit of "
                f"{limits.max_file_bytes / MiB:.0f} MiB per file")
    if entry.compressed is not None and entry.size > RATIO_FLOOR_BYTES:
        ratio = entry.size / max(entry.compressed, 1)
        if ratio > limits.max_ratio:
            return (f"compressed {ratio:.0f}:1, over the limit of {limits.max_ratio:.0f}:1 "
                    "(a zip bomb looks like this)")
    return ""


def decode_into(builder: DatasetBuilder, plan: list[Planned], classes: list[str],
                limits: IngestLimits, progress: Progress | None) -> tuple[Counter, list]:
    """Read, decode and add every planned entry; returns kept images per class and one
    fingerprint per added image (in the builder's order). Entries are read here, in order,
    and decoded on every core (parallel.py); an upload that needs no conversion is stored as
    its own bytes, the others as cleaned PNGs."""
    label_of = {cls: index for index, cls in enumerate(classes)}
    kept: Counter = Counter()
    total, step = len(plan), max(1, len(plan) // 100)
    if progress:
        progress(0, total)
    prints = []
    read = [None] * total  # the bytes of entries in flight, kept until their result is back
    outcomes = ordered_map(partial(store_ready, max_pixels=limits.max_pixels),
                           read_in_order(plan, read), parallel=total >= PARALLEL_MIN_FILES)
    try:
        for done, (planned, outcome) in enumerate(zip(plan, outcomes, strict=True), start=1):
            entry, cls = planned.entry, planned.label
            data, read[done - 1] = read[done - 1], None
            if isinstance(outcome, str):
                builder.drop(entry.name, outcome)
            else:
                # a given split pins the image; a train/ folder's images stay free, so that
                # a split the upload lacks can be drawn from them
                split = None if planned.split == "train" else planned.split
                builder.add_file(data if outcome.data is None else outcome.data,
                                 outcome.extension, outcome.mode, outcome.size, label_of[cls],
                                 entry.name, split=split)
                prints.append(outcome.fingerprint)
                kept[cls] += 1
            if progress and (done % step == 0 or done == total):
                progress(done, total)
    except WorkerCrashed as exc:
        raise DatasetError(f"The import stopped: {exc}. Nothing was imported; try again, or "
                           "remove the file that crashes it.") from None
    return kept, prints


def read_in_order(plan: list[Planned], read: list) -> Iterator[bytes | str]:
    """Each planned entry's bytes (also kept in `read[i]`), or the reason it cannot be read."""
    for index, planned in enumerate(plan):
        entry = planned.entry
        try:
            read[index] = read_entry(entry)
        except ImageRejected as exc:
            yield exc.reason
        else:
            yield read[index]


def read_entry(entry: Entry) -> bytes:
    """The entry's bytes, never more than it declared (a forged size cannot blow past)."""
    try:
        data = entry.read(entry.size + 1) if entry.read else b""
    except READ_ERRORS as exc:
        raise ImageRejected(f"could not be read ({type(exc).__name__}: {exc})") from None
    if len(data) > entry.size:
        raise ImageRejected("holds more bytes than its header declares (forged or changing)")
    if data[:4] == b"PK\x03\x04":
        raise ImageRejected("nested archive (a zip named like an image)")
    return data


def check_enough(kept: Counter, dropped: list[dict], limits: IngestLimits, what: str,
                 kind: str) -> None:
    """The whole-set rule: enough `kind` (image files, usable images), in two classes or more."""
    classes = sorted(cls for cls, count in kept.items() if count)
    total = sum(kept.values())
    if len(classes) >= 2 and total >= limits.min_images_kept:
        return
    if not classes:
        problem = f"{what} has no {kind}"
    elif len(classes) == 1:
        problem = (f"{what} has {kind} in one class only ({classes[0]!r}); "
                   "a classifier needs at least two")
    else:
        problem = f"{what} has {total} {kind}; at least {limits.min_images_kept} are needed"
    raise DatasetError(
        f"{problem}. Put each class's images in its own folder (class_name/image.jpg), "
        "or name them label.N.jpg (or pass a label pattern), and upload the folder, a zip of "
        "it (train/, val/, test/ folders of classes are kept as splits), or a CSV of "
        "path,label rows."
        + drop_summary(dropped)
    )


def drop_summary(dropped: list[dict], shown: int = 5) -> str:
    if not dropped:
        return ""
    listed = "; ".join(f"{item['file']}: {item['reason']}" for item in dropped[:shown])
    more = f"; and {len(dropped) - shown} more" if len(dropped) > shown else ""
    return f" Dropped {len(dropped)} file(s): {listed}{more}."
