"""The learning-rate range test (Leslie Smith's, as fastai's `lr_find`).

Train a fresh copy of the model for a few dozen steps while the learning rate
grows exponentially; the loss first falls, then explodes. A good peak learning
rate sits where the loss falls fastest, well before the minimum.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.config import TrainConfig
from core.data.loader import Augment, to_model_input
from core.training.prepare import prepare

SMOOTHING = 0.9  # exponential moving average of the loss, as fastai does
DIVERGE_FACTOR = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum


def lr_find(config: TrainConfig, *, start_lr: float = 1e-6, end_lr: float = 10.0,
            steps: int = 80) -> dict:
    """Return {"lrs", "losses" (smoothed), "suggestion"} for `config`'s model and data."""
    config = replace(config, epochs=1)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = prepare(config, Path(scratch))
    model, optimizer = prepared.model, prepared.optimizer
    generator = torch.Generator(device=prepared.device).manual_seed(config.seed)
    augment = Augment(prepared.flip, config.pad_crop, config.jitter)
    ratio = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    lrs, losses, smoothed, best = [], [], 0.0, math.inf
    model.train()
    for step, (images, labels) in enumerate(endless(prepared.train, config.batch_size, generator)):
        lr = start_lr * ratio ** step
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = to_model_input(images, prepared.mean, prepared.std, augment, generator)
        with prepared.autocast():
            loss = F.cross_entropy(model(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        smoothed = SMOOTHING * smoothed + (1 - SMOOTHING) * value
        debiased = smoothed / (1 - SMOOTHING ** (step + 1))
        if not math.isfinite(debiased):
            break
        lrs.append(lr)
        losses.append(debiased)
        best = min(best, debiased)
        if step + 1 >= steps or debiased > DIVERGE_FACTOR * best:
            break
    return {"lrs": lrs, "losses": losses, "suggestion": suggest_lr(lrs, losses)}


def endless(split, batch_size: int, generator: torch.Generator):
    while True:
        yield from split.batches(batch_size, shuffle=True, generator=generator, drop_last=True)


def suggest_lr(lrs: list[float], losses: list[float]) -> float | None:
    """The learning rate where the loss falls fastest (steepest slope against log lr), looking
    only before the loss's minimum."""
    if len(lrs) < 5:
        return None
    stop = int(np.argmin(losses)) + 1
    if stop < 3:
        return lrs[0]
    slopes = np.gradient(np.array(losses[:stop]), np.log(np.array(lrs[:stop])))
    return float(lrs[int(np.argmin(slopes))])
