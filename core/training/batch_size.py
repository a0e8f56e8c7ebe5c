"""Auto batch size: the largest batch that trains on this device, found once and remembered.

The search tries real training steps (forward, backward, optimizer step, on a copy of the
model) on doubling batches until the device runs out of memory, then settles between the last
batch that fit and the first that did not, and keeps a safety margin for what the probe does
not see (evaluation, fragmentation, the cached data growing). The answer is remembered per
(model, image size, channels, precision, device) in the workspace, so the search runs once.
On a CPU (or Apple GPU) there is no out-of-memory signal to search for, and bigger batches do
not run faster there, so a fixed sensible size is used instead.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from core.config import TrainConfig
from core.durable import write_json_atomic
from core.training.device import release_memory
from core.training.optim import make_optimizer
from core.workspace import home

log = logging.getLogger(__name__)
START = 16  # the first batch tried
MAX_AUTO_BATCH = 1024  # beyond this, bigger batches rarely train faster per epoch
NO_PROBE_BATCH = 128  # CPU / MPS: no out-of-memory signal to search with
SAFETY = 0.9  # keep this share of the largest batch that fit
MULTIPLE = 8  # round down to a multiple of this (tensor-core friendly)
PROBE_STEPS = 2  # the first step also allocates the optimizer's state


def memory_file() -> Path:
    return home() / "batch_sizes.json"


def remembered() -> dict[str, int]:
    try:
        return json.loads(memory_file().read_text())
    except (OSError, ValueError):
        return {}


def remember(key: str, batch: int) -> None:
    write_json_atomic(memory_file(), remembered() | {key: batch})


def memory_key(config: TrainConfig, in_chans: int, image_size: int, precision: str,
               device: torch.device) -> str:
    """`model|size px|channels|precision|device name`; a custom layer spec by its hash."""
    spec = config.extra.get("spec")
    model = config.model
    if spec:
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        model = f"{model}:{digest}"
    return f"{model}|{image_size}px|{in_chans}ch|{precision}|{device_name(device)}"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} {props.total_memory // 2**20} MiB"
    return device.type


def can_probe(device: torch.device) -> bool:
    """Only CUDA reports running out of memory reliably (as torch.OutOfMemoryError)."""
    return device.type == "cuda"


def auto_batch_size(config: TrainConfig, model: torch.nn.Module, device: torch.device, *,
                    in_chans: int, image_size: int, num_classes: int, precision: str,
                    autocast: Callable, train_size: int) -> int:
    """The batch size for a run asking for auto, at most the training-set size."""
    if not can_probe(device):
        return max(1, min(NO_PROBE_BATCH, train_size))
    key = memory_key(config, in_chans, image_size, precision, device)
    known = remembered().get(key)
    if known is None:
        def try_batch(batch: int) -> None:
            training_step(config, model, device, batch, in_chans=in_chans,
                          image_size=image_size, num_classes=num_classes, autocast=autocast)
        largest = largest_fitting(try_batch)
        known = largest if largest >= MAX_AUTO_BATCH else settle(largest)  # memory-bound: margin
        remember(key, known)
        log.info("auto batch size for %s: %d", key, known)
    return max(1, min(known, train_size))


def largest_fitting(try_batch: Callable[[int], None], *, start: int = START,
                    cap: int = MAX_AUTO_BATCH) -> int:
    """The largest batch (up to `cap`) for which `try_batch` raises no torch.OutOfMemoryError:
    doubling from `start`, then halving the gap to the first batch that failed, down to a
    gap of MULTIPLE. Raises torch.OutOfMemoryError when not even one image fits."""
    fits, fails = 0, None
    batch = start
    while batch <= cap:
        if not fits_in_memory(try_batch, batch):
            fails = batch
            break
        fits, batch = batch, batch * 2
    if fits == 0:
        fits, fails = search_below(try_batch, fails or start)
    if fails is None:
        return fits
    while fails - fits > MULTIPLE:
        middle = (fits + fails) // 2
        if fits_in_memory(try_batch, middle):
            fits = middle
        else:
            fails = middle
    return fits


def search_below(try_batch: Callable[[int], None], failed: int) -> tuple[int, int]:
    """Halve below a batch that failed until one fits: (that batch, the one above it)."""
    batch = failed // 2
    while batch >= 1:
        if fits_in_memory(try_batch, batch):
            return batch, failed
        failed, batch = batch, batch // 2
    raise torch.OutOfMemoryError("Not even a batch of one image fits in the device's memory; "
                                 "pick a smaller model or image size.")


def settle(largest: int) -> int:
    """The safety margin: SAFETY of the largest batch that fit, rounded down to MULTIPLE."""
    if largest <= MULTIPLE:
        return largest
    return max(MULTIPLE, int(largest * SAFETY) // MULTIPLE * MULTIPLE)


def fits_in_memory(try_batch: Callable[[int], None], batch: int) -> bool:
    try:
        try_batch(batch)
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        release_memory()


def training_step(config: TrainConfig, model: torch.nn.Module, device: torch.device,
                  batch: int, *, in_chans: int, image_size: int, num_classes: int,
                  autocast: Callable) -> None:
    """PROBE_STEPS training steps of a copy of `model` on random images (the run's own model
    and its BatchNorm statistics stay untouched)."""
    probe = copy.deepcopy(model).train()
    optimizer = make_optimizer(config, probe)
    x = torch.randn(batch, in_chans, image_size, image_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), device=device)
    try:
        for _ in range(PROBE_STEPS):
            with autocast():
                loss = F.cross_entropy(probe(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    finally:
        del probe, optimizer, x, y
