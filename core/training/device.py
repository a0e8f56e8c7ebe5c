"""Where and how a run computes: the device, the precision, autocast, the "fastest" switch
(torch.compile with fallbacks), and handing memory back after an out-of-memory error."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

CUDA_GRAPH_MAX_PX = 64  # at or below this size, kernel launches dominate a step: CUDA graphs pay


class CompiledForward:
    """torch.compile's forward in the first of `modes` that works, falling back to the next
    mode, and to eager for good when none does: asking for speed must never cost the run."""

    def __init__(self, model: torch.nn.Module, modes: tuple[str, ...] = ("default",)) -> None:
        self.model = model
        self.modes = list(modes)
        self.errors: list[str] = []
        self.compiled = self.compile_next()

    @property
    def mode(self) -> str:
        """The compile mode in use: "reduce-overhead" (CUDA graphs), "default" or "eager"."""
        return self.modes[0] if self.modes else "eager"

    @property
    def error(self) -> str | None:
        return self.errors[-1] if self.errors else None

    def compile_next(self) -> Callable | None:
        if not self.modes:
            return None
        if self.modes[0] == "default":
            return torch.compile(self.model)
        return torch.compile(self.model, mode=self.modes[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        while self.compiled is not None:
            try:
                if self.mode == "reduce-overhead":
                    torch.compiler.cudagraph_mark_step_begin()  # a new training step begins
                return self.compiled(x)
            except Exception as error:  # any compiler failure: carry on in the next mode
                self.errors.append(f"{self.mode}: {error.__class__.__name__}: {error}")
                log.warning("torch.compile (%s) failed, trying %s: %s", self.mode,
                            self.modes[1] if len(self.modes) > 1 else "eager", self.errors[-1])
                self.modes.pop(0)
                self.compiled = self.compile_next()
        return self.model(x)


def compile_modes(device: torch.device, image_size: int) -> tuple[str, ...]:
    """The "fastest" switch's compile modes, best first: CUDA graphs (reduce-overhead) for small
    images on CUDA, where launching kernels costs more than running them."""
    if device.type == "cuda" and image_size <= CUDA_GRAPH_MAX_PX:
        return ("reduce-overhead", "default")
    return ("default",)


def compile_mode(forward: Callable) -> str:
    return forward.mode if isinstance(forward, CompiledForward) else "eager"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but no GPU is visible; use --device auto or cpu.")
    return torch.device(name)


def describe_device() -> str:
    """What training will run on: the GPU's name and memory, "Apple GPU (MPS)", or "CPU"."""
    device = pick_device("auto")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return "Apple GPU (MPS)" if device.type == "mps" else "CPU"


def resolved_precision(device: torch.device, precision: str) -> str:
    """"bf16" or "fp32": what `precision` (auto | fp32 | bf16) means on `device`."""
    bf16 = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return "bf16" if bf16 else "fp32"


def autocast_for(device: torch.device, precision: str) -> Callable:
    if resolved_precision(device, precision) == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def visible_gpus() -> int:
    """How many CUDA GPUs this process sees (the Train page offers "GPUs: N" when several)."""
    return torch.cuda.device_count()
