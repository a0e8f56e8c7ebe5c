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

from core.checkpoint import load_weights
from core.config import TrainConfig
from core.data.cache import default_image_size, load_cache
from core.data.dataset import Dataset, load_dataset, write_json_atomic
from core.data.loader import DeviceSplit, channel_stats
from core.workspace import runs_dir
from models import PRETRAINED_NAME, create_model, model_profile
from models.pretrained import freeze_backbone, pretrained_data_config

log = logging.getLogger(__name__)


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
                "train": len(self.train), "val": len(self.val), "test": len(self.test)}


class CompiledForward:
    """torch.compile's forward, falling back to eager for good if compiling fails: asking for
    speed must never cost the run."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.compiled = torch.compile(model)
        self.error: str | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.error is None:
            try:
                return self.compiled(x)
            except Exception as error:  # any compiler failure: carry on uncompiled
                self.error = f"{error.__class__.__name__}: {error}"
                log.warning("torch.compile failed, training uncompiled: %s", self.error)
        return self.model(x)


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


def autocast_for(device: torch.device, precision: str) -> Callable:
    bf16 = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    if not bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def prepare(config: TrainConfig, run_dir: Path) -> Setup:
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
    write_model_card(run_dir, config, dataset, size, mean, std)
    train = DeviceSplit(images[splits["train"]], labels[splits["train"]], device)
    return Setup(
        device=device, dataset=dataset, image_size=size, train=train,
        val=DeviceSplit(images[splits["val"]], labels[splits["val"]], device),
        test=DeviceSplit(images[splits["test"]], labels[splits["test"]], device),
        mean=torch.tensor(mean, device=device), std=torch.tensor(std, device=device),
        model=model, optimizer=make_optimizer(config, model),
        autocast=autocast_for(device, config.precision),
        forward=CompiledForward(model) if config.compile else model,
        steps_per_epoch=max(1, len(train) // config.batch_size),
        params=profile["params"], flops=profile.get("flops"),
    )


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
    })


def read_model_card(run_dir: Path) -> dict:
    return json.loads((run_dir / "model.json").read_text())
