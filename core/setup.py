"""Everything a run needs before its first step: device, data on it, model, optimizer."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.batch_size import auto_batch_size
from core.checkpoint import load_weights
from core.config import AUTO_BATCH, TrainConfig
from core.data.cache import default_image_size, load_cache
from core.data.dataset import Dataset, load_dataset
from core.data.loader import DeviceSplit, channel_stats
from core.distributed import SINGLE_PROCESS, SingleProcess, is_main
from core.durable import write_json_atomic
from core.ema import WeightEMA
from core.workspace import runs_dir
from models import PRETRAINED_NAME, create_model, model_profile
from models.pretrained import freeze_backbone, pretrained_data_config

log = logging.getLogger(__name__)
CUDA_GRAPH_MAX_PX = 64  # at or below this size, kernel launches dominate a step: CUDA graphs pay


@dataclass
class Setup:
    device: torch.device
    dataset: Dataset
    image_size: int
    train: DeviceSplit
    val: DeviceSplit
    test: DeviceSplit
    mean: torch.Tensor
    std: torch.Tensor
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    autocast: Callable[[], contextlib.AbstractContextManager]
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, compiled when asked
    steps_per_epoch: int
    params: int
    flops: int | None
    batch_size: int  # the batch the run trains with (auto resolved)
    ema: WeightEMA | None = None  # the weights' moving average, when the config asks for one
    ranks: SingleProcess = SINGLE_PROCESS  # the loop's collectives (core.distributed.attach)

    @property
    def eval_model(self) -> torch.nn.Module:
        """What validation, testing and the best checkpoint use: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def num_classes(self) -> int:
        return len(self.dataset.classes)

    def train_mode(self, backbone_frozen: bool) -> None:
        """Train mode; with the backbone frozen, its BatchNorm statistics stay fixed too."""
        self.model.train()
        if not hasattr(self.model, "get_classifier"):
            return
        freeze_backbone(self.model, backbone_frozen)
        if backbone_frozen:
            head = set(self.model.get_classifier().modules())
            for module in self.model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module not in head:
                    module.eval()

    def describe(self) -> dict:
        return {"device": str(self.device), "model": self.model.__class__.__name__,
                "params": self.params, "image_size": self.image_size,
                "batch_size": self.batch_size, "compile_mode": compile_mode(self.forward),
                "train": len(self.train), "val": len(self.val), "test": len(self.test)}


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


def prepare(config: TrainConfig, run_dir: Path) -> Setup:
    """Build everything the run needs. An auto batch size is resolved here and written into
    `config.batch_size` (and the model card, so a resume trains at the same batch)."""
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    dataset = load_dataset(config.data)
    size = config.image_size or default_image_size(dataset)
    images = load_cache(dataset, size)
    labels = np.array([item.label for item in dataset.items], dtype=np.int64)
    splits = {name: np.array(dataset.indices(name), dtype=np.int64)
              for name in ("train", "val", "test")}
    mean, std = normalisation(config, dataset, images, splits["train"])
    model = build_model(config, dataset, size).to(device, memory_format=torch.channels_last)
    profile = model_profile(model, in_chans=dataset.channels, image_size=size)
    train = DeviceSplit(images[splits["train"]], labels[splits["train"]], device)
    val = DeviceSplit(images[splits["val"]], labels[splits["val"]], device)
    test = DeviceSplit(images[splits["test"]], labels[splits["test"]], device)
    autocast = autocast_for(device, config.precision)
    if config.batch_size == AUTO_BATCH:
        config.batch_size = saved_batch_size(run_dir) or auto_batch_size(
            config, model, device, in_chans=dataset.channels, image_size=size,
            num_classes=len(dataset.classes), autocast=autocast, train_size=len(train),
            precision=resolved_precision(device, config.precision))
    if is_main():  # under torchrun, rank 0 alone writes the run folder
        write_model_card(run_dir, config, dataset, size, mean, std)
    forward = model
    if config.compile:
        forward = CompiledForward(model, compile_modes(device, size))
    return Setup(
        device=device, dataset=dataset, image_size=size, train=train, val=val, test=test,
        mean=torch.tensor(mean, device=device), std=torch.tensor(std, device=device),
        model=model, optimizer=make_optimizer(config, model), autocast=autocast,
        forward=forward, steps_per_epoch=max(1, len(train) // config.batch_size),
        params=profile["params"], flops=profile.get("flops"), batch_size=config.batch_size,
        ema=WeightEMA(model, config.ema_decay) if config.ema_decay else None,
    )


def saved_batch_size(run_dir: Path) -> int | None:
    """The batch an earlier start of this run resolved "auto" to (a resume keeps it)."""
    try:
        return int(read_model_card(run_dir)["batch_size"]) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def normalisation(config: TrainConfig, dataset: Dataset, images: np.ndarray,
                  train_index: np.ndarray) -> tuple[list[float], list[float]]:
    if config.model == PRETRAINED_NAME:
        data_config = pretrained_data_config()
        mean, std = list(data_config["mean"]), list(data_config["std"])
        if dataset.channels == 1:
            return [sum(mean) / 3], [sum(std) / 3]
        return mean, std
    return channel_stats(images[np.sort(train_index)])


def build_model(config: TrainConfig, dataset: Dataset, size: int) -> torch.nn.Module:
    model = create_model(config.extra.get("spec") or config.model, in_chans=dataset.channels,
                         num_classes=len(dataset.classes), image_size=size)
    if config.init_from:
        source = runs_dir() / config.init_from
        same_classes = (source / "model.json").exists() and \
            read_model_card(source)["classes"] == dataset.classes
        load_matching_weights(model, source / "best.safetensors", keep_head=same_classes)
    return model


def load_matching_weights(model: torch.nn.Module, path: Path, *, keep_head: bool) -> None:
    """Start from another run's weights. The head stays new unless `keep_head` (same classes in
    the same order); so does any layer whose shape differs."""
    if not path.exists():
        raise ValueError(f"No trained weights at {path}; choose a completed run to start from.")
    own = model.state_dict()
    head = set() if keep_head else head_keys(model)
    weights = {k: v for k, v in load_weights(path).items()
               if k in own and own[k].shape == v.shape and k not in head}
    if not weights:
        raise ValueError("That run's model shares no layers with this one; pick the same model.")
    model.load_state_dict(weights, strict=False)


def head_keys(model: torch.nn.Module) -> set[str]:
    """State-dict keys of the classification head: timm's classifier, else the last Linear."""
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
    else:
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        head = linears[-1] if linears else None
    names = {id(tensor): name for name, tensor in model.state_dict(keep_vars=True).items()}
    return {names[id(t)] for t in (head.state_dict(keep_vars=True).values() if head else [])
            if id(t) in names}


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for parameter in model.parameters():
        (decay if parameter.ndim > 1 else no_decay).append(parameter)  # no decay on bias / norm
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    lr = config.peak_lr()
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=lr)


def write_model_card(run_dir: Path, config: TrainConfig, dataset: Dataset, size: int,
                     mean: list[float], std: list[float]) -> None:
    """What inference needs to rebuild the model and preprocess exactly as validation did."""
    write_json_atomic(run_dir / "model.json", {
        "model": config.model, "classes": dataset.classes, "in_chans": dataset.channels,
        "image_size": size, "mean": mean, "std": std, "data": dataset.name,
        "content_hash": dataset.content_hash, "spec": config.extra.get("spec"),
        "splits": dataset.split_counts(), "split_seed": dataset.seed,
        "batch_size": config.batch_size,
    })


def read_model_card(run_dir: Path) -> dict:
    return json.loads((run_dir / "model.json").read_text())
