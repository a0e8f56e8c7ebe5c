"""An exponential moving average (EMA) of a model's weights, evaluated instead of the raw ones.

torch.optim.swa_utils.AveragedModel does this job too, but its update reads its update count on
the host (`bool(n_averaged == 0)`): a device sync at every step on CUDA, which the training
loop avoids. Here the step count comes from the loop (a Python int), so an update is one
`_foreach_lerp_` queued on the device. Buffers are averaged too (BatchNorm statistics, as the
CIFAR-10 speed runs do), so the averaged network's statistics match its averaged weights.
"""

from __future__ import annotations

import copy

import torch

from core.training.checkpoint import unwrap

WARMUP_STEPS = 10  # the decay ramps up as (1 + step) / (WARMUP_STEPS + step): early weights fade


class WeightEMA(torch.nn.Module):
    """The averaged copy lives in `.module`, so checkpoint.unwrap(ema) is a plain network
    with the model's own state-dict keys: a `best` checkpoint saved from it loads like any."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.module = copy.deepcopy(unwrap(model)).requires_grad_(False)
        self._pairs: tuple[list, list, list] | None = None

    def decay_at(self, step: int) -> float:
        """The decay after `step` optimizer steps: short runs are not stuck with their start."""
        return min(self.decay, (1 + step) / (WARMUP_STEPS + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Move the average towards `model` after its `step`-th optimizer step (1-based)."""
        averaged, live, counters = self.pairs(model)
        torch._foreach_lerp_(averaged, live, 1 - self.decay_at(step))
        for mine, theirs in counters:  # integer buffers (BatchNorm's batch count): copied
            mine.copy_(theirs)

    def pairs(self, model: torch.nn.Module) -> tuple[list, list, list]:
        """Matching (averaged, live) tensors, found once: both state dicts hold views of the
        modules' own tensors, which loading a checkpoint overwrites in place."""
        if self._pairs is None:
            averaged, live, counters = [], [], []
            mine = self.module.state_dict().values()
            theirs = unwrap(model).state_dict().values()
            for a, b in zip(mine, theirs, strict=True):
                if a.is_floating_point():
                    averaged.append(a)
                    live.append(b)
                else:
                    counters.append((a, b))
            self._pairs = averaged, live, counters
        return self._pairs
