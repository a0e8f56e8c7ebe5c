"""Decode on every core: an ordered map over worker processes, and the importer's per-file step.

`ordered_map` hands items to a process pool in chunks and yields the results in input order
(so item ids stay deterministic), with a bounded number of chunks in flight (so a 25,000-photo
upload never sits in memory at once). Small jobs run inline: starting processes costs more.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

from core.data.duplicates import fingerprint
from core.data.images import ImageRejected, decode_upload, png_bytes

T = TypeVar("T")
R = TypeVar("R")
CHUNK = 16  # files per task: enough to hide the hand-over, few enough to keep every core busy
IN_FLIGHT_PER_WORKER = 4  # chunks queued per worker


class WorkerCrashed(RuntimeError):
    """A worker process died (a decoder crashed on some input, or the system killed it)."""


@dataclass
class Stored:
    """What the importer writes for one upload: its own bytes (`data` None) or a cleaned PNG."""
    data: bytes | None
    extension: str
    mode: str
    size: tuple[int, int]
    fingerprint: tuple | None = None  # duplicates.fingerprint of the decoded image


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def pool_context() -> multiprocessing.context.BaseContext:
    """fork when no other Python thread runs here (the CLI, a test): the cheapest start, with
    nothing re-imported; the children only decode, so the idle native pools of numpy or torch
    do not matter (as in torch's DataLoader). spawn where other threads run (Streamlit's
    server, a worker's heartbeat), as one of them could hold a lock a forked child inherits,
    and where fork is missing."""
    methods = multiprocessing.get_all_start_methods()
    single = threading.active_count() == 1
    return multiprocessing.get_context("fork" if single and "fork" in methods else "spawn")


def ordered_map(func: Callable[[list[T]], list[R]], items: Iterable[T], *, parallel: bool,
                chunk: int | None = None) -> Iterator[R]:
    """`func` over `items` in chunks, results in input order; on worker processes when
    `parallel` and there is more than one core, else in this process."""
    iterator = iter(items)
    size = chunk or CHUNK
    chunks = iter(lambda: list(islice(iterator, size)), [])
    workers = usable_cores()
    if not parallel or workers == 1:
        for block in chunks:
            yield from func(block)
        return
    pending: deque[Future] = deque()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
            for block in chunks:
                pending.append(pool.submit(func, block))
                if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
    except BrokenProcessPool:
        raise WorkerCrashed("a decoding process died (a decoder crashed on one of the files, "
                            "or the system ran out of memory)") from None


def store_ready(items: list[bytes | str], max_pixels: int) -> list[Stored | str]:
    """For each upload's bytes: what to store, or the reason it is dropped. A str in is a
    reason already (the file could not be read) and comes back as it is."""
    return [item if isinstance(item, str) else store_one(item, max_pixels) for item in items]


def store_one(data: bytes, max_pixels: int) -> Stored | str:
    try:
        decoded = decode_upload(data, max_pixels, check_only=True)
    except ImageRejected as exc:
        return exc.reason
    image = decoded.image
    sample = image
    if image.size != decoded.size and min(image.size) < 64:  # a small draft: too coarse
        sample = decode_upload(data, max_pixels).image  # for the duplicate finder's hashes
    prints = fingerprint(sample)
    if decoded.keep:
        return Stored(None, decoded.extension, image.mode, decoded.size, prints)
    return Stored(png_bytes(image), ".png", image.mode, decoded.size, prints)
