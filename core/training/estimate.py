"""How long a run will take, said before it starts.

    seconds ≈ (epochs × (3 × FLOPs/image × training images + FLOPs/image × validation images)
               + FLOPs/image × test images) / training FLOP rate of this device

The FLOPs per image are the model's own (torch's FLOP counter, models.model_profile); a
training step costs about three forward passes (the forward, and the backward through the
activations and the weights). The rate is measured, not assumed: `probe_rate` trains the
model for about a second on random images on this device, at the run's batch size (smaller
only when one step would be too long: small batches run slower, so the estimate then errs
long). A time budget caps the estimate;
early stopping can only make a run shorter. Data loading and checkpoints are not counted, so
a short run takes a little longer than said.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.config import TrainConfig
from core.data.cache import default_image_size
from core.data.dataset import Dataset
from core.training.device import pick_device

BACKWARD_FACTOR = 3.0  # a training step ≈ 3 forward passes (forward, backward twice)
LONG_CPU_SECONDS = 600.0  # warn before a CPU run longer than this
PROBE_SECONDS = 1.0  # how long the probe trains
PROBE_STEP_FLOPS = 3e10  # at most this much per probe step: the batch shrinks below it
AUTO_BATCH_GUESS = 128  # an "auto" batch, for the probe (the CPU's choice; a GPU's is larger)


@dataclass(frozen=True)
class Probe:
    """What a short training probe measured on a device."""
    device: str  # "cpu", "cuda" or "mps"
    flops_per_s: float  # training FLOPs per second (forward, backward and the update)


@dataclass(frozen=True)
class Estimate:
    seconds: float
    device: str
    capped_by_budget: bool = False

    @property
    def on_cpu(self) -> bool:
        return self.device == "cpu"

    @property
    def too_long_for_cpu(self) -> bool:
        return self.on_cpu and self.seconds > LONG_CPU_SECONDS


def run_flops(flops_per_image: float, epochs: int, counts: dict[str, int]) -> float:
    """Every FLOP the run computes: training and validation each epoch, the test set once."""
    per_epoch = (BACKWARD_FACTOR * counts.get("train", 0) + counts.get("val", 0)) \
        * flops_per_image
    return epochs * per_epoch + counts.get("test", 0) * flops_per_image


def estimate_run(config: TrainConfig, counts: dict[str, int], flops_per_image: float,
                 probe: Probe) -> Estimate:
    """The run's time on the probed device, capped by its time budget."""
    if probe.flops_per_s <= 0:
        raise ValueError("The probe measured no throughput; the estimate needs a rate above 0.")
    seconds = run_flops(flops_per_image, config.epochs, counts) / probe.flops_per_s
    budget = (config.budget_minutes or 0) * 60
    if budget and seconds > budget:
        return Estimate(budget, probe.device, capped_by_budget=True)
    return Estimate(seconds, probe.device)


def probe_batch(flops_per_image: float, run_batch: int = 0) -> int:
    """The run's batch (throughput grows with it), or fewer images, at least 2, when a step
    would cost more than PROBE_STEP_FLOPS."""
    wanted = run_batch or AUTO_BATCH_GUESS
    affordable = PROBE_STEP_FLOPS // max(1.0, BACKWARD_FACTOR * flops_per_image)
    return int(max(2, min(wanted, affordable)))


def probe_rate(model: torch.nn.Module, *, in_chans: int, image_size: int, num_classes: int,
               flops_per_image: float, device: str = "auto", batch_size: int = 0,
               seconds: float = PROBE_SECONDS,
               clock: Callable[[], float] = time.perf_counter) -> Probe:
    """Train `model` on random images for about `seconds` (after one warm-up step) and return
    the FLOP rate it reached. The model's weights change: give it a fresh copy."""
    target = pick_device(device)
    model = model.to(target, memory_format=torch.channels_last).train()  # as training does
    batch = probe_batch(flops_per_image, batch_size)
    images = torch.randn(batch, in_chans, image_size, image_size, device=target)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, num_classes, (batch,), device=target)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    step()  # warm-up: allocation, kernel choice
    synchronize(target)
    started, steps = clock(), 0
    while steps < 1 or clock() - started < seconds:
        step()
        steps += 1
    synchronize(target)
    elapsed = max(clock() - started, 1e-9)
    return Probe(target.type, steps * batch * BACKWARD_FACTOR * flops_per_image / elapsed)


def measure_model(model: str | dict, *, in_chans: int, num_classes: int, image_size: int,
                  device: str = "auto", batch_size: int = 0) -> tuple[float, Probe | None]:
    """(FLOPs per image, the probe of this device) for a model name or a layer spec; no probe
    when its FLOPs cannot be counted."""
    from models import create_model, model_profile

    net = create_model(model, in_chans=in_chans, num_classes=num_classes, image_size=image_size)
    flops = model_profile(net, in_chans=in_chans, image_size=image_size)["flops"] or 0
    if not flops:
        return 0.0, None
    return float(flops), probe_rate(net, in_chans=in_chans, image_size=image_size,
                                    num_classes=num_classes, flops_per_image=flops,
                                    device=device, batch_size=batch_size)


Measure = Callable[..., tuple[float, "Probe | None"]]


def estimate_config(config: TrainConfig, dataset: Dataset,
                    measure: Measure = measure_model) -> Estimate | None:
    """The run's estimate on this device, or None when its model's FLOPs cannot be counted.
    `measure` takes measure_model's arguments (the Train page passes a cached one)."""
    model = config.extra.get("spec") or config.model
    flops, probe = measure(model, in_chans=dataset.channels, num_classes=len(dataset.classes),
                           image_size=config.image_size or default_image_size(dataset),
                           device=config.device, batch_size=config.batch_size)
    if not flops or probe is None:
        return None
    return estimate_run(config, dataset.split_counts(), flops, probe)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def duration_text(seconds: float) -> str:
    """About how long, in words a person reads at a glance: 40 s, 13 min, 2 h 10 min."""
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min"


def describe(estimate: Estimate) -> str:
    """"about 13 min on this CPU" (or GPU), saying when a time budget caps it."""
    where = {"cpu": "this CPU", "cuda": "this GPU", "mps": "this Apple GPU"}.get(
        estimate.device, estimate.device)
    text = f"about {duration_text(estimate.seconds)} on {where}"
    return text + (" (its time budget)" if estimate.capped_by_budget else "")
