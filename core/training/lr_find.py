"""The learning-rate range test (Leslie Smith's, as fastai's `lr_find`).

Train a fresh copy of the model for a few dozen steps while the learning rate
grows exponentially; the loss first falls, then explodes. A good peak learning
rate sits where the loss falls fastest, well before the minimum.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.config import AUTO_LR, DEFAULT_LR, TrainConfig
from core.data.loader import Augment, to_model_input
from core.training.model_card import read_model_card
from core.training.prepare import prepare

log = logging.getLogger(__name__)

SMOOTHING = 0.9  # exponential moving average of the loss, as fastai does
DIVERGE_FACTOR = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
AUTO_LR_SECONDS = 30.0  # the time budget of the range test that `--lr auto` runs first


def lr_find(config: TrainConfig, *, start_lr: float = 1e-6, end_lr: float = 10.0,
            steps: int = 80, budget_seconds: float | None = None) -> dict:
    """Return {"lrs", "losses" (smoothed), "suggestion", "seconds"} for `config`'s model and
    data. With `budget_seconds` the test ends when that time is spent (the suggestion then comes
    from the steps it took)."""
    started = time.perf_counter()
    config = replace(config, epochs=1, lr=None)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = prepare(config, Path(scratch))
    model, optimizer = prepared.model, prepared.optimizer
    generator = torch.Generator(device=prepared.device).manual_seed(config.seed)
    augment = Augment(prepared.flip, prepared.shift, config.jitter)
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
        if budget_seconds is not None and time.perf_counter() - started > budget_seconds:
            break
    return {"lrs": lrs, "losses": losses, "suggestion": suggest_lr(lrs, losses),
            "seconds": time.perf_counter() - started}


def two_digits(value: float) -> float:
    """A learning rate rounded to two significant digits (0.0031234 → 0.0031)."""
    return float(f"{value:.2g}")


def resolve_auto_lr(config: TrainConfig, run_dir: Path) -> dict | None:
    """For `lr` auto: set `config.lr` to the range test's suggestion (two significant digits),
    or to the rate an earlier start of this run found (a resume trains at the same rate).
    Returns what was found (None when the config does not ask for auto)."""
    if config.lr != AUTO_LR:
        return None
    try:
        config.lr = float(read_model_card(run_dir)["lr"])
        return {"lr": config.lr, "resumed": True}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = lr_find(config, budget_seconds=AUTO_LR_SECONDS)
    suggestion = found["suggestion"]
    config.lr = two_digits(suggestion) if suggestion else DEFAULT_LR[config.optimizer]
    note = None if suggestion else (f"the range test took too few steps to suggest a rate; "
                                    f"trained at {config.optimizer}'s default")
    if note:
        log.warning(note)
    return {"lr": config.lr, "suggestion": suggestion, "steps": len(found["lrs"]),
            "seconds": round(found["seconds"], 2), "note": note}


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
