"""Decode once: a dataset's images as one uint8 N×H×W×C array per image size.

Decoding PNG/JPEG every epoch is the slow part of a naive pipeline; here every
run at the same (dataset, size) memory-maps the same `.npy` file instead. The build decodes
on every core, JPEGs at reduced size (DCT scaling, images.decode_image's `draft_to`), with
the very decode and transform inference uses, so a model sees the same pixels in both.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from core.data.dataset import Dataset
from core.data.images import decode_image
from core.data.parallel import ordered_map
from core.data.transforms import fit_image, resolve_resize
from core.durable import fsync_file, replace_durably
from core.workspace import process_alive

# Below this many pixels in all (~250 photos, ~40,000 28-px digits), starting worker
# processes costs more than it saves.
PARALLEL_MIN_PIXELS = 32_000_000
CHUNK_PIXELS = 4_000_000  # pixels decoded per task (~20 photos, 512 small images at most)
NO_PIXEL_CAP = 1 << 62  # stored images passed the importer's pixel cap already


def cache_path(dataset: Dataset, size: int, mode: str = "crop") -> Path:
    """The cache file of (dataset, size, resize mode). Modes differ only for non-square
    images, so a dataset of squares shares one file between them."""
    suffix = "" if mode == "crop" or all_square(dataset) else f"-{mode}"
    return dataset.folder / "cache" / f"{size}px-{dataset.channels}ch{suffix}.npy"


def all_square(dataset: Dataset) -> bool:
    return all(item.width == item.height for item in dataset.items)


def dataset_resize(dataset: Dataset, setting: str = "auto") -> tuple[str, str]:
    """The resize mode (core.data.transforms) of a run on `dataset` with `setting`, and why."""
    return resolve_resize(setting, ((item.width, item.height) for item in dataset.items))


def default_image_size(dataset: Dataset) -> int:
    """The dataset's own size when every image is the same square, else 64; never below 16."""
    sizes = {(item.width, item.height) for item in dataset.items}
    if len(sizes) == 1:
        width, height = sizes.pop()
        if width == height:
            return max(16, width)
    return 64


def write_cache(dataset: Dataset, size: int, array: np.ndarray) -> Path:
    """Store an already-decoded array (used by the built-in datasets)."""
    if array.shape != (len(dataset.items), size, size, dataset.channels):
        raise ValueError(f"cache array shape {array.shape} does not match the dataset")
    path = cache_path(dataset, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    try:
        np.save(tmp, np.ascontiguousarray(array, dtype=np.uint8))
        fsync_file(tmp)
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written cache behind
        raise
    return path


def load_cache(dataset: Dataset, size: int,
               progress: Callable[[int, int], None] | None = None,
               mode: str = "crop") -> np.ndarray:
    """The memory-mapped cache for (dataset, size, resize mode), building it first if it is
    missing."""
    path = cache_path(dataset, size, mode)
    if not path.exists():
        build_cache(dataset, size, progress, mode)
    return np.load(path, mmap_mode="r")


def build_cache(dataset: Dataset, size: int,
                progress: Callable[[int, int], None] | None = None, mode: str = "crop") -> Path:
    path = cache_path(dataset, size, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    remove_abandoned_builds(path)
    folder = dataset.folder  # once: it resolves the workspace path each time it is read
    files = [str(folder / item.file) for item in dataset.items]
    shape = (len(files), size, size, dataset.channels)
    try:
        with tmp.open("wb") as out:
            # Written in order, not through a memory map: a cache larger than memory never
            # sits in this process's resident memory
            np.lib.format.write_array_header_1_0(
                out, {"descr": "|u1", "fortran_order": False, "shape": shape})
            reserve_disk(tmp, out.tell() + int(np.prod(shape)))
            rows = ordered_map(partial(decode_files, size=size, channels=dataset.channels,
                                       mode=mode),
                               files, parallel=total_pixels(dataset) >= PARALLEL_MIN_PIXELS,
                               chunk=chunk_size(dataset))
            step = max(1, len(files) // 100)
            for index, row in enumerate(rows):
                out.write(np.ascontiguousarray(row, dtype=np.uint8).data)
                if progress and ((index + 1) % step == 0 or index + 1 == len(files)):
                    progress(index + 1, len(files))
        fsync_file(tmp)
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half-built cache is never left behind
        raise
    return path


def remove_abandoned_builds(path: Path) -> None:
    """Delete half-built caches of processes that were killed mid-build (named <stem>.<pid>
    .tmp.npy); another live process's build is left alone."""
    for tmp in path.parent.glob(f"{path.stem}.*.tmp.npy"):
        pid = tmp.name[len(path.stem) + 1:-len(".tmp.npy")]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def reserve_disk(path: Path, size: int) -> None:
    """Allocate the file's blocks now: a full disk fails here, at once, as an OSError
    (ENOSPC), not after minutes of decoding."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        # EOPNOTSUPP and friends: this file system cannot reserve; the writes still work
    finally:
        os.close(fd)


def total_pixels(dataset: Dataset) -> int:
    return sum(max(item.width, 1) * max(item.height, 1) for item in dataset.items)


def chunk_size(dataset: Dataset) -> int:
    """Files per task: about CHUNK_PIXELS of images, between 8 and 512 files."""
    mean_pixels = total_pixels(dataset) / max(1, len(dataset.items))
    return int(min(512, max(8, CHUNK_PIXELS // max(1.0, mean_pixels))))


def decode_files(files: list[str], size: int, channels: int, mode: str = "crop") -> np.ndarray:
    """The files' rows of the cache: each decoded as inference decodes it (a JPEG at reduced
    size), then `fit_image`d."""
    out = np.empty((len(files), size, size, channels), dtype=np.uint8)
    for index, file in enumerate(files):
        image = decode_image(Path(file).read_bytes(), NO_PIXEL_CAP, draft_to=size)
        out[index] = fit_image(image, size, channels, mode)
    return out
