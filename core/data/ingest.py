"""Import an upload — a zip, a folder, a CSV of `path,label`, or files in memory — as a dataset.

Every source goes through one pipeline:
  1. enumerate  archive.py lists entries (name, declared size, reader); nothing is read yet
  2. check      caps on count and total size refuse the whole upload; per-entry rules
                (unsafe path, link, junk, not an image, too big, over-compressed) drop one
  3. lay out    ImageFolder classes from the paths (or the CSV's labels)
  4. decode     read each entry under its cap, decode in memory on every core (images.py,
                parallel.py); store the upload's own bytes when it needs no conversion, else
                a cleaned PNG
  5. finish     whole-set rules, then DatasetBuilder splits and writes the manifest
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
from core.data.images import IMAGE_EXTENSIONS, ImageRejected
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
                   progress: Progress | None = None, overwrite: bool = False) -> Dataset:
    """Import a .zip (path or binary file object), a folder, or a .csv of path,label rows."""
    limits = limits or IngestLimits()
    check_request(name, val, test)
    with open_source(source, limits) as (what, entries):
        return ingest(entries, what, name, val=val, test=test, seed=seed, limits=limits,
                      progress=progress, overwrite=overwrite)


def import_entries(entries: Iterable[tuple[str, bytes]], name: str, *, val: float = 0.1,
                   test: float = 0.1, seed: int = 0, limits: IngestLimits | None = None,
                   progress: Progress | None = None, overwrite: bool = False) -> Dataset:
    """Import files already in memory: ("class_name/file.jpg", bytes) pairs."""
    limits = limits or IngestLimits()
    check_request(name, val, test)
    return ingest(memory_entries(entries), "The upload", name, val=val, test=test, seed=seed,
                  limits=limits, progress=progress, overwrite=overwrite)


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
           overwrite: bool) -> Dataset:
    """The one pipeline: check every entry, lay out classes, decode, build."""
    listed = take(entries, limits.max_entries, what)
    check_total_size(listed, what, limits)
    plan, dropped = plan_entries(listed, limits)
    classes = sorted({cls for _, cls in plan})
    check_enough(Counter(cls for _, cls in plan), dropped, limits, what, "image files")
    builder = DatasetBuilder(name, classes, overwrite=overwrite,
                             max_bytes=limits.max_written_bytes)
    try:
        for item in dropped:
            builder.drop(item["file"], item["reason"])
        kept = decode_into(builder, plan, classes, limits, progress)
        check_enough(kept, builder.dropped, limits, what, "usable images")
        try:
            return builder.finish(val=val, test=test, seed=seed)
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


def plan_entries(entries: list[Entry], limits: IngestLimits,
                 ) -> tuple[list[tuple[Entry, str]], list[dict]]:
    """(entry, class) for every entry worth decoding, and {file, reason} for the rest."""
    candidates, dropped = screen_entries(entries, limits)
    plan, rootless = assign_classes(candidates)
    return plan, dropped + rootless


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


def assign_classes(entries: list[Entry]) -> tuple[list[tuple[Entry, str]], list[dict]]:
    """ImageFolder layout: the class is the first folder below the longest common prefix."""
    pathed = [entry for entry in entries if entry.label is None]
    folders = [entry.name.split("/")[:-1] for entry in pathed]
    prefix = os.path.commonprefix(folders) if folders else []
    if prefix and all(len(folder) == len(prefix) for folder in folders):
        prefix = prefix[:-1]  # every file sits in one folder: that folder is the class
    plan = [(entry, entry.label) for entry in entries if entry.label is not None]
    dropped = []
    for entry, folder in zip(pathed, folders, strict=True):
        if len(folder) > len(prefix):
            plan.append((entry, folder[len(prefix)]))
        else:
            dropped.append({"file": entry.name,
                            "reason": "not inside a class folder (use class_name/image.jpg)"})
    return plan, dropped


def decode_into(builder: DatasetBuilder, plan: list[tuple[Entry, str]], classes: list[str],
                limits: IngestLimits, progress: Progress | None) -> Counter:
    """Read, decode and add every planned entry; returns kept images per class. Entries are
    read here, in order, and decoded on every core (parallel.py); an upload that needs no
    conversion is stored as its own bytes, the others as cleaned PNGs."""
    label_of = {cls: index for index, cls in enumerate(classes)}
    kept: Counter = Counter()
    total, step = len(plan), max(1, len(plan) // 100)
    if progress:
        progress(0, total)
    read = [None] * total  # the bytes of entries in flight, kept until their result is back
    outcomes = ordered_map(partial(store_ready, max_pixels=limits.max_pixels),
                           read_in_order(plan, read), parallel=total >= PARALLEL_MIN_FILES)
    try:
        for done, ((entry, cls), outcome) in enumerate(zip(plan, outcomes, strict=True), start=1):
            data, read[done - 1] = read[done - 1], None
            if isinstance(outcome, str):
                builder.drop(entry.name, outcome)
            else:
                builder.add_file(data if outcome.data is None else outcome.data,
                                 outcome.extension, outcome.mode, outcome.size, label_of[cls],
                                 entry.name)
                kept[cls] += 1
            if progress and (done % step == 0 or done == total):
                progress(done, total)
    except WorkerCrashed as exc:
        raise DatasetError(f"The import stopped: {exc}. Nothing was imported; try again, or "
                           "remove the file that crashes it.") from None
    return kept


def read_in_order(plan: list[tuple[Entry, str]], read: list) -> Iterator[bytes | str]:
    """Each planned entry's bytes (also kept in `read[i]`), or the reason it cannot be read."""
    for index, (entry, _) in enumerate(plan):
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
        f"{problem}. Put each class's images in its own folder (class_name/image.jpg) "
        "and upload the folder, a zip of it, or a CSV of path,label rows."
        + drop_summary(dropped)
    )


def drop_summary(dropped: list[dict], shown: int = 5) -> str:
    if not dropped:
        return ""
    listed = "; ".join(f"{item['file']}: {item['reason']}" for item in dropped[:shown])
    more = f"; and {len(dropped) - shown} more" if len(dropped) > shown else ""
    return f" Dropped {len(dropped)} file(s): {listed}{more}."
