"""The training loop: one `fit`, config in, events out through hooks.

Data lives on the device (core.data.loader); the loop never waits for the device
between steps: losses and hit counts accumulate there and are read about once a
second, when step metrics go out and the stop flag is checked.
"""

from __future__ import annotations

import math
import platform
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.config import TrainConfig
from core.data.balance import balanced_accuracy
from core.data.loader import Augment, to_model_input
from core.training.after_fit import calibrate_run
from core.training.checkpoint import (
    has_checkpoint,
    load_checkpoint,
    remove_partial_writes,
    save_checkpoint,
)
from core.training.device import compile_mode
from core.training.evaluate import evaluate, per_class_metrics
from core.training.hooks import HookList, Hooks
from core.training.lr_find import resolve_auto_lr
from core.training.prepare import PreparedRun, attach, prepare
from core.training.ranks import is_main
from core.training.run_files import TEST_CONFUSION
from core.training.schedule import lr_factor

FLUSH_SECONDS = 1.0  # how often step metrics are read from the device and sent to the hooks
TOP5_MIN_CLASSES = 10  # top-5 accuracy is reported from this many classes on
GiB = 2**30


class StopRequested(Exception):
    """A hook asked the run to stop; it ends cleanly as `stopped`."""


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; the run ends as `failed`."""


@dataclass
class Progress:
    """Everything about a run's progress that a resume needs, saved with `last`."""
    epoch: int = 0  # epochs completed
    step: int = 0
    best_val_acc: float = -1.0
    best_epoch: int = 0
    best_val_loss: float = math.inf
    epochs_without_improvement: int = 0
    epoch_seconds: list[float] = field(default_factory=list)
    epoch_images: list[int] = field(default_factory=list)
    # {step, epoch, metrics} of the epoch just finished: a process killed after `last` is saved
    # but before the epoch's metrics reach the store gets them replayed on resume (runs.py)
    last_epoch: dict = field(default_factory=dict)


def fit(config: TrainConfig, run_dir: Path, hooks: Hooks | Iterable[Hooks] = (),
        resume: bool = False) -> dict:
    """Train `config` writing checkpoints into run_dir; return the result summary."""
    hooks = hooks if isinstance(hooks, Hooks) else HookList(list(hooks))
    config.validate()
    if is_main():  # under torchrun, rank 0 alone writes the run folder
        remove_partial_writes(run_dir)  # temp files of a write that a kill cut short
    lr_auto = resolve_auto_lr(config, run_dir)  # `lr` auto: the range test first
    prepared = prepare(config, run_dir)
    attach(prepared, config)  # one rank of several (torchrun): DDP, this rank's share of batches
    progress = Progress()
    if resume and has_checkpoint(run_dir, "last"):
        saved = load_checkpoint(run_dir, "last", prepared.model, prepared.optimizer,
                                ema=prepared.ema)
        progress = Progress(**saved["progress"])
    hooks.on_start(prepared.describe() | {"resumed_from_epoch": progress.epoch,
                                          "start_step": progress.step, "epochs": config.epochs,
                                          "lr": config.peak_lr()})
    status, reason = "completed", None
    loop_start = time.perf_counter()
    try:
        run_epochs(config, prepared, progress, hooks, run_dir)
    except StopRequested:
        status = "stopped"
    except NonFiniteLoss as error:
        status, reason = "failed", str(error)
    train_seconds = time.perf_counter() - loop_start
    result = finish(config, prepared, progress, run_dir, status, reason, train_seconds)
    if lr_auto is not None:
        result["lr_auto"] = lr_auto
    hooks.on_end(result)
    return result


def run_epochs(config: TrainConfig, prepared: PreparedRun, progress: Progress, hooks: Hooks,
               run_dir: Path) -> None:
    while progress.epoch < config.epochs:
        epoch = progress.epoch
        train_metrics = train_one_epoch(config, prepared, progress, hooks)
        val = prepared.ranks.from_main(lambda: evaluate(  # several ranks: rank 0's, broadcast
            prepared.eval_model, prepared.val, prepared.mean, prepared.std,
            tta_flip=prepared.tta_flip,
            num_classes=prepared.num_classes, autocast=prepared.autocast))
        if not math.isfinite(val["loss"]):  # weights went bad on a step whose loss looked fine
            raise NonFiniteLoss(
                f"The validation loss became {val['loss']} after epoch {epoch + 1}. Lower the "
                "learning rate (try a tenth of it) or turn on a warmup; the best checkpoint so "
                "far is kept.")
        progress.epoch = epoch + 1
        improved_acc = val["acc"] > progress.best_val_acc
        if improved_acc:
            progress.best_val_acc, progress.best_epoch = val["acc"], epoch + 1
        if improved_acc and prepared.ranks.is_main:
            save_checkpoint(run_dir, "best", prepared.eval_model,
                            state={"epoch": epoch + 1, **val_json(val)})
        stop_early = (update_early_stopping(config, progress, val["loss"])
                      or out_of_budget(config, progress))
        metrics = {**train_metrics, "val_loss": val["loss"], "val_acc": val["acc"]}
        if prepared.num_classes >= TOP5_MIN_CLASSES:
            metrics["val_top5"] = val["top5"]
        progress.last_epoch = {"step": progress.step, "epoch": progress.epoch, "metrics": metrics}
        if prepared.ranks.is_main:
            save_checkpoint(run_dir, "last", prepared.model, prepared.optimizer, ema=prepared.ema,
                            state={"progress": progress.__dict__})
        hooks.on_epoch(progress.step, progress.epoch, metrics)
        if stop_early or prepared.ranks.agree(hooks.should_stop()):
            if not stop_early:
                raise StopRequested
            break


def update_early_stopping(config: TrainConfig, progress: Progress, val_loss: float) -> bool:
    if val_loss < progress.best_val_loss:
        progress.best_val_loss, progress.epochs_without_improvement = val_loss, 0
    else:
        progress.epochs_without_improvement += 1
    return config.patience > 0 and progress.epochs_without_improvement >= config.patience


def out_of_budget(config: TrainConfig, progress: Progress) -> bool:
    """True when another epoch like the last would end past the time budget."""
    if config.budget_minutes is None:
        return False
    spent = sum(progress.epoch_seconds)
    return spent + progress.epoch_seconds[-1] > config.budget_minutes * 60


def train_one_epoch(config: TrainConfig, prepared: PreparedRun, progress: Progress,
                    hooks: Hooks) -> dict:
    optimizer, device = prepared.optimizer, prepared.device
    epoch = progress.epoch
    ranks = prepared.ranks
    # dropout; per epoch, so a resume replays it, and per rank, so ranks draw different masks
    torch.manual_seed(epoch_seed(config.seed, epoch) * ranks.world_size + ranks.rank)
    generator = torch.Generator(device=device).manual_seed(epoch_seed(config.seed, epoch))
    augment = Augment(prepared.flip, prepared.shift, config.jitter,
                      share=(ranks.rank, ranks.world_size))
    peak_lr = config.peak_lr()
    prepared.train_mode(backbone_frozen=epoch < config.freeze_epochs)
    epoch_loss = torch.zeros((), device=device)
    epoch_correct = torch.zeros((), device=device, dtype=torch.long)
    window_loss = torch.zeros((), device=device)
    window_images, window_start = 0, time.perf_counter()
    seen, start = 0, time.perf_counter()
    for images, labels in prepared.train.batches(config.batch_size, shuffle=True,
                                              generator=generator, drop_last=True):
        lr = peak_lr * lr_factor(config, progress.step, prepared.steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = to_model_input(images, prepared.mean, prepared.std, augment, generator)
        with prepared.autocast():
            logits = prepared.forward(x)
            loss = F.cross_entropy(logits.float(), labels, weight=prepared.class_weights,
                                   label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        batch_loss = loss.detach() * len(labels)
        epoch_loss += batch_loss
        window_loss += batch_loss
        epoch_correct += (logits.detach().argmax(1) == labels).sum()
        seen += len(labels)
        window_images += len(labels)
        progress.step += 1
        if prepared.ema is not None:
            prepared.ema.update(prepared.model, progress.step)
        if prepared.ranks.flush_due(progress.step, window_start, FLUSH_SECONDS):
            flush_window(prepared, progress, hooks, window_loss, window_images, window_start,
                         lr, seen)
            window_loss.zero_()
            window_images, window_start = 0, time.perf_counter()
    if window_images:
        flush_window(prepared, progress, hooks, window_loss, window_images, window_start, lr, seen)
    if prepared.device.type == "cuda":
        torch.cuda.synchronize(prepared.device)
    seconds = time.perf_counter() - start
    epoch_loss, epoch_correct, seen, seconds = prepared.ranks.epoch_totals(
        epoch_loss, epoch_correct, seen, seconds)
    progress.epoch_seconds.append(seconds)
    progress.epoch_images.append(seen)
    return {"train_loss": epoch_loss.item() / max(1, seen),
            "train_acc": epoch_correct.item() / max(1, seen),
            "epoch_seconds": seconds, "images_per_s": seen / seconds, "lr": lr}


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's batch order and augmentation: a resume replays it exactly."""
    return seed * 1000 + epoch


def flush_window(prepared: PreparedRun, progress: Progress, hooks: Hooks, window_loss: torch.Tensor,
                 window_images: int, window_start: float, lr: float, seen: int) -> None:
    loss_sum, window_images = prepared.ranks.window_totals(
        window_loss, window_images, time.perf_counter() - window_start)
    loss = loss_sum / window_images  # the one host sync of the window
    if not math.isfinite(loss):
        raise NonFiniteLoss(
            f"The training loss became {loss} at step {progress.step}. Lower the learning rate "
            "(try a tenth of it) or turn on a warmup; the best checkpoint so far is kept.")
    epoch_float = progress.epoch + seen * prepared.ranks.world_size / max(1, len(prepared.train))
    metrics = {"loss": loss, "lr": lr,
               "images_per_s": window_images / (time.perf_counter() - window_start)}
    if prepared.device.type == "cuda":
        metrics["gpu_mem_gb"] = torch.cuda.max_memory_allocated(prepared.device) / GiB
    hooks.on_step(progress.step, epoch_float, metrics)
    if prepared.ranks.agree(hooks.should_stop()):
        raise StopRequested


def finish(config: TrainConfig, prepared: PreparedRun, progress: Progress, run_dir: Path,
           status: str,
           reason: str | None, train_seconds: float) -> dict:
    """Test the best checkpoint and write the confusion matrix; build the result summary."""
    result = {
        "status": status, "error": reason, "model": config.model, "data": config.data,
        "device": str(prepared.device), "epochs": progress.epoch, "steps": progress.step,
        "best_val_acc": progress.best_val_acc if progress.best_val_acc >= 0 else None,
        "best_epoch": progress.best_epoch, "test_acc": None,
        "train_seconds": train_seconds, "train_images_per_s": steady_throughput(progress),
        "params": prepared.params, "flops": prepared.flops, "image_size": prepared.image_size,
        "batch_size": prepared.batch_size, "lr": config.peak_lr(),
        "compile_mode": compile_mode(prepared.forward),
        "environment": environment(prepared.device), **prepared.data_fit(),
    }
    if prepared.device.type == "cuda":
        result["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(prepared.device) / GiB
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result |= prepared.ranks.summary()
    if has_checkpoint(run_dir, "best") and len(prepared.test) and prepared.ranks.is_main:
        load_checkpoint(run_dir, "best", prepared.model)
        test = evaluate(prepared.model, prepared.test, prepared.mean, prepared.std,
                        tta_flip=prepared.tta_flip,
                        num_classes=prepared.num_classes, autocast=prepared.autocast)
        result.update(test_acc=test["acc"], test_loss=test["loss"])
        if prepared.num_classes >= TOP5_MIN_CLASSES:
            result["test_top5"] = test["top5"]
        result["per_class"] = per_class_metrics(test["confusion"], prepared.classes)
        result["balanced_acc"] = balanced_accuracy(test["confusion"])
        np.save(run_dir / TEST_CONFUSION, test["confusion"])
        result["confusion"] = test["confusion"].tolist()
        result |= calibrate_run(config, prepared, run_dir)  # temperature, unknown-input detector
    return result


def environment(device: torch.device) -> dict:
    """Versions and hardware, so a result can be reproduced and compared fairly."""
    env = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "python": platform.python_version(), "device": str(device),
           "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def steady_throughput(progress: Progress) -> float | None:
    """Training images/s, leaving out the first epoch (warm-up, compilation) when there are more."""
    seconds, images = progress.epoch_seconds, progress.epoch_images
    if len(seconds) > 1:
        seconds, images = seconds[1:], images[1:]
    return sum(images) / sum(seconds) if seconds and sum(seconds) > 0 else None


def val_json(val: dict) -> dict:
    return {"val_loss": val["loss"], "val_acc": val["acc"]}
