"""Benchmarks: the engine against the naive pipeline and against its ceiling, decoding into
the cache, and time to accuracy (whole runs, per seed).

The pipeline comparison runs every side in one process, on the same data and model. Each
benchmark returns rows for a table. Every table carries the device, versions, date and the
command that made it, so a figure in bench/RESULTS.md can be reproduced.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.config import TrainConfig
from core.data.cache import build_cache, cache_path, default_image_size, load_cache
from core.data.dataset import load_dataset
from core.data.loader import Augment, DeviceSplit, channel_stats, to_model_input
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store
from core.training.device import autocast_for, pick_device
from models import create_model

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def environment_line(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})")
    return (f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"Python {platform.python_version()}; "
            f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")


def command_line() -> str:
    return "python -m core " + " ".join(sys.argv[1:])


def time_steps(model: torch.nn.Module, batches: Batches, *, steps: int, warmup: int,
               device: torch.device, autocast=None, prepare=None) -> float:
    """Training images/s over `steps` steps after `warmup` untimed ones."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    seen, start = 0, None
    for index, (x, y) in enumerate(batches):
        if index == warmup:
            sync(device)
            start, seen = time.perf_counter(), 0
        if index == warmup + steps:
            break
        if prepare is not None:
            x = prepare(x)
        with (autocast or contextlib.nullcontext)():
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
    sync(device)
    if start is None:
        raise ValueError("Not enough batches for the warm-up; use fewer --warmup steps.")
    return seen / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def repeat(batches_factory: Callable[[], Batches]) -> Batches:
    while True:
        yield from batches_factory()


def naive_batches(dataset, size: int, batch_size: int, mean, std, device) -> Batches:
    """The seed articles' pipeline: ImageFolder over the image files, PIL transforms in
    DataLoader worker processes on every core, fp32 NCHW tensors copied to the device."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    steps = [transforms.Resize(size), transforms.CenterCrop(size)]
    if dataset.channels == 1:
        steps.append(transforms.Grayscale(1))
    steps += [transforms.RandomHorizontalFlip(), transforms.RandomCrop(size, padding=2),
              transforms.ToTensor(), transforms.Normalize(mean, std)]
    folder = datasets.ImageFolder(str(dataset.folder / "images"),
                                  transform=transforms.Compose(steps))
    loader = DataLoader(folder, batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=os.cpu_count() or 1, persistent_workers=True,
                        pin_memory=device.type == "cuda")
    for x, y in repeat(lambda: iter(loader)):
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def engine_batches(split: DeviceSplit, batch_size: int, seed: int = 0) -> Batches:
    generator = torch.Generator(device=split.device).manual_seed(seed)
    yield from repeat(lambda: split.batches(batch_size, shuffle=True, generator=generator,
                                            drop_last=True))


def synthetic_batches(batch_size: int, channels: int, size: int, classes: int,
                      device: torch.device) -> Batches:
    x = torch.randn(batch_size, channels, size, size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch_size,), device=device)
    while True:
        yield x, y


def pipeline(data: str, model_name: str, *, image_size: int | None = None, batch_size: int = 64,
             steps: int = 50, warmup: int = 5, device: str = "auto") -> list[dict]:
    """Naive vs engine vs synthetic ceiling, same model and batch size: rows of images/s."""
    torch_device = pick_device(device)
    dataset = load_dataset(data)
    size = image_size or default_image_size(dataset)
    images = np.asarray(load_cache(dataset, size))
    train_index = np.array(dataset.indices("train"))
    labels = np.array([dataset.items[i].label for i in train_index])
    mean, std = channel_stats(images, index=np.sort(train_index))
    split = DeviceSplit(images[train_index], labels, torch_device)
    mean_t, std_t = torch.tensor(mean, device=torch_device), torch.tensor(std, device=torch_device)
    augment = Augment(flip=True, pad_crop=2)
    autocast = autocast_for(torch_device, "auto")

    def fresh_model(channels_last: bool) -> torch.nn.Module:
        torch.manual_seed(0)
        model = create_model(model_name, in_chans=dataset.channels,
                             num_classes=len(dataset.classes), image_size=size).to(torch_device)
        return model.to(memory_format=torch.channels_last) if channels_last else model

    timing = {"steps": steps, "warmup": warmup, "device": torch_device}
    naive = time_steps(fresh_model(False), naive_batches(dataset, size, batch_size, mean, std,
                                                         torch_device), **timing)
    engine = time_steps(fresh_model(True), engine_batches(split, batch_size), **timing,
                        autocast=autocast,
                        prepare=lambda x: to_model_input(x, mean_t, std_t, augment))
    ceiling = time_steps(fresh_model(True), synthetic_batches(
        batch_size, dataset.channels, size, len(dataset.classes), torch_device), **timing,
        autocast=autocast)
    base = {"data": data, "model": model_name, "image_size": size, "batch_size": batch_size}
    return [base | {"pipeline": "naive (ImageFolder + PIL + DataLoader, fp32 NCHW)",
                    "images_per_s": naive, "vs_naive": 1.0},
            base | {"pipeline": "engine (uint8 on device, device augmentation)",
                    "images_per_s": engine, "vs_naive": engine / naive,
                    "share_of_ceiling": engine / ceiling},
            base | {"pipeline": "ceiling (synthetic tensors on device)",
                    "images_per_s": ceiling, "vs_naive": ceiling / naive}]


def ingest(data: str, image_size: int) -> list[dict]:
    """Images/s decoding a dataset's files into a fresh cache (all cores)."""
    dataset = load_dataset(data)
    path = cache_path(dataset, image_size)
    backup = path.with_suffix(".bench-backup")
    if path.exists():
        shutil.move(path, backup)
    try:
        start = time.perf_counter()
        build_cache(dataset, image_size)
        seconds = time.perf_counter() - start
    finally:
        if backup.exists():
            shutil.move(backup, path)
    return [{"data": data, "image_size": image_size, "images": len(dataset.items),
             "seconds": seconds, "images_per_s": len(dataset.items) / seconds,
             "workers": os.cpu_count()}]


def time_to_accuracy(config: TrainConfig, targets: list[float], seeds: list[int], *,
                     cold_cache: bool = True) -> list[dict]:
    """Train `config` once per seed. Per seed: the test accuracy, whether it reached each target,
    seconds of training, and seconds of everything: starting Python and importing torch, decoding
    the cache from the image files (with `cold_cache`), building the model, training, testing.
    A last row holds the means."""

    store, rows = Store(), []
    startup = seconds_since_process_start()
    for seed in seeds:
        if cold_cache:
            drop_cache(config)
        start = time.perf_counter()
        run_config = TrainConfig.from_dict(config.to_dict() | {"seed": seed,
                                                                "name": f"bench-seed{seed}"})
        result = execute_run(new_run(run_config, store, status="running"), store)
        if result["status"] != "completed":
            raise RuntimeError(f"The seed-{seed} run {result['status']}: {result.get('error')}")
        rows.append({"seed": seed, "test_acc": result["test_acc"],
                     "train_seconds": result["train_seconds"],
                     "total_seconds": startup + time.perf_counter() - start,
                     **{f"reached_{t}": (result["test_acc"] or 0) >= t for t in targets}})
    return rows + [mean_row(rows, targets)]


def mean_row(rows: list[dict], targets: list[float]) -> dict:
    def mean(key: str) -> float:
        return sum(row[key] for row in rows) / len(rows)

    return {"seed": f"mean of {len(rows)}", "test_acc": mean("test_acc"),
            "train_seconds": mean("train_seconds"), "total_seconds": mean("total_seconds"),
            **{f"reached_{t}": f"{sum(row[f'reached_{t}'] for row in rows)}/{len(rows)}"
               for t in targets}}


def drop_cache(config: TrainConfig) -> None:
    """Remove the run's decode-once cache so the run decodes the image files again."""
    dataset = load_dataset(config.data)
    cache_path(dataset, config.image_size or default_image_size(dataset)).unlink(missing_ok=True)


def seconds_since_process_start() -> float:
    """How long ago this process started (interpreter start-up and imports), from /proc; 0 where
    /proc is missing."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))


def markdown_table(rows: list[dict], title: str, device: torch.device) -> str:
    if not rows:
        return f"### {title}\n\n(no rows)\n"
    keys = list(dict.fromkeys(key for row in rows for key in row))
    lines = [f"### {title}", "", f"Device: {environment_line(device)}  ",
             f"Command: `{command_line()}`", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row.get(k)) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def format_cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)
