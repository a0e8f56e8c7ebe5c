"""Decode once: a dataset's images as one uint8 N×H×W×C array per image size.

Decoding PNG/JPEG every epoch is the slow part of a naive pipeline; here every
run at the same (dataset, size) memory-maps the same `.npy` file instead.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from core.data.dataset import Dataset
from core.data.transforms import fit_image, resolve_resize
from core.durable import fsync_file, replace_durably
from core.workspace import process_alive

PARALLEL_THRESHOLD = 2000  # below this, starting worker processes costs more than it saves
CHUNK = 512


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
    files = [str(dataset.folder / item.file) for item in dataset.items]
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(len(files), size, size, dataset.channels))
        reserve_disk(tmp)
        chunks = [(start, files[start:start + CHUNK]) for start in range(0, len(files), CHUNK)]
        done = 0
        for start, block in decode_chunks(chunks, size, dataset.channels, mode):
            out[start:start + len(block)] = block
            done += len(block)
            if progress:
                progress(done, len(files))
        out.flush()
        del out
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


def reserve_disk(path: Path) -> None:
    """Allocate the memory-mapped file's blocks now: on a full disk a write through the map
    would kill the process with SIGBUS; here it fails as an OSError (ENOSPC) instead."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        # EOPNOTSUPP and friends: this file system cannot reserve; the sparse map still works
    finally:
        os.close(fd)


def decode_chunks(chunks: list[tuple[int, list[str]]], size: int, channels: int,
                  mode: str = "crop"):
    total = sum(len(files) for _, files in chunks)
    if total < PARALLEL_THRESHOLD or (os.cpu_count() or 1) == 1:
        for start, files in chunks:
            yield start, decode_files(files, size, channels, mode)
        return
    # spawn, not fork: the parent may hold torch threads that a forked child must not inherit
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=context) as pool:
        futures = [(start, pool.submit(decode_files, files, size, channels, mode))
                   for start, files in chunks]
        for start, future in futures:
            yield start, future.result()


def decode_files(files: list[str], size: int, channels: int, mode: str = "crop") -> np.ndarray:
    out = np.empty((len(files), size, size, channels), dtype=np.uint8)
    for index, file in enumerate(files):
        with Image.open(file) as image:
            out[index] = fit_image(image, size, channels, mode)
    return out
