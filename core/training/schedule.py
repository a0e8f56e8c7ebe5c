"""Learning-rate schedules as plain functions of the step, so the Train page can plot them."""

from __future__ import annotations

import math

from core.config import TrainConfig


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    """Steps in one epoch as the loop takes them (data.loader's drop_last): full batches only,
    or one step of the whole split when it is smaller than a batch."""
    return max(1, train_images // batch_size)


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the peak learning rate at `step` (0-based) of the whole run."""
    total = max(1, config.epochs * steps_per_epoch)
    progress = min(step / total, 1.0)
    if config.schedule == "onecycle":
        return one_cycle(progress)
    warmup = config.warmup_epochs * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "cosine":
        after = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(after, 1.0)))
    if config.schedule == "step":
        return config.gamma ** (step // max(1, config.step_size * steps_per_epoch))
    return 1.0


def one_cycle(progress: float, peak_at: float = 0.25, start: float = 0.04,
              end: float = 0.0) -> float:
    """Linear up from start×peak to the peak, then linear down to end×peak (as the speed runs)."""
    if progress < peak_at:
        return start + (1 - start) * progress / peak_at
    return 1 - (1 - end) * (progress - peak_at) / (1 - peak_at)


def lr_curve(config: TrainConfig, steps_per_epoch: int) -> list[tuple[float, float]]:
    """(epoch, learning rate) points for a preview plot, at most ~500 of them."""
    total = config.epochs * steps_per_epoch
    every = max(1, total // 500)
    peak = config.peak_lr()
    return [(step / steps_per_epoch, peak * lr_factor(config, step, steps_per_epoch))
            for step in range(0, total, every)]
