"""Everything a run needs before its first step: device, data on it, model, optimizer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from core.config import AUTO_BATCH, TrainConfig
from core.data.balance import class_weights, imbalance, sample_weights
from core.data.cache import dataset_resize, default_image_size, load_cache
from core.data.dataset import Dataset, load_dataset
from core.data.loader import DeviceSplit, channel_stats, in_memory, split_images, stats_sample
from core.data.mirror import resolve_flip
from core.data.shift import resolve_shift
from core.training.batch_size import auto_batch_size
from core.training.device import (
    CompiledForward,
    autocast_for,
    compile_mode,
    compile_modes,
    pick_device,
    resolved_precision,
)
from core.training.ema import WeightEMA
from core.training.model_card import read_model_card, write_model_card
from core.training.optim import make_optimizer
from core.training.ranks import (
    SINGLE_PROCESS,
    ProcessGroup,
    ShardedSplit,
    SingleProcess,
    check_world,
    is_main,
    joined,
)
from core.training.run_files import MODEL_CARD, weights_file
from core.training.schedule import steps_per_epoch
from core.training.transfer import load_matching_weights
from core.workspace import home, runs_dir
from models import PRETRAINED_NAMES, create_model, model_profile
from models.pretrained import freeze_backbone, pretrained_data_config

log = logging.getLogger(__name__)

@dataclass
class PreparedRun:
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
    ranks: SingleProcess = SINGLE_PROCESS  # the loop's collectives (attach, below)
    flip: bool = True  # the run's flip, `auto` decided from the data (core.data.mirror)
    flip_reason: str = ""
    tta_flip: bool = False  # flip test-time augmentation: asked for, and the run flips
    shift: int = 2  # the random shift in pixels, unset (auto) decided from the data
    shift_reason: str = ""
    resize: str = "crop"  # the resize mode (core.data.transforms), `auto` resolved
    resize_reason: str = ""
    class_weights: torch.Tensor | None = None  # the loss's, when the config balances by weights
    balance: str = "none"
    imbalance_ratio: float | None = None  # largest / smallest class, when over 3× (else None)

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
                "steps_per_epoch": self.steps_per_epoch, "train": len(self.train),
                "val": len(self.val), "test": len(self.test), **self.data_fit()}

    def data_fit(self) -> dict:
        """The choices made from the data, for the result and the model card."""
        return {"flip": self.flip, "flip_reason": self.flip_reason, "tta_flip": self.tta_flip,
                "shift": self.shift, "shift_reason": self.shift_reason,
                "resize": self.resize, "resize_reason": self.resize_reason,
                "balance": self.balance, "imbalance_ratio": self.imbalance_ratio}


def prepare(config: TrainConfig, run_dir: Path) -> PreparedRun:
    """Build everything the run needs. An auto batch size is resolved here and written into
    `config.batch_size` (and the model card, so a resume trains at the same batch)."""
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    dataset = load_dataset(config.data)
    size = config.image_size or default_image_size(dataset)
    resize, resize_reason = dataset_resize(dataset, config.resize)
    images = load_cache(dataset, size, mode=resize)
    labels = np.array([item.label for item in dataset.items], dtype=np.int64)
    splits = {name: np.array(dataset.indices(name), dtype=np.int64)
              for name in ("train", "val", "test")}
    mean, std = normalisation(config, dataset, images, splits["train"])
    model = build_model(config, dataset, size).to(device, memory_format=torch.channels_last)
    profile = model_profile(model, in_chans=dataset.channels, image_size=size)
    stream = not in_memory(images, len(images))  # larger than memory: read per batch
    train, val, test = (DeviceSplit(split_images(images, splits[name], stream),
                                    labels[splits[name]], device)
                        for name in ("train", "val", "test"))
    train_labels, classes = labels[splits["train"]], len(dataset.classes)
    if config.balance == "sampler":
        train.sample_weights = torch.from_numpy(sample_weights(train_labels, classes))
    weights = torch.from_numpy(class_weights(train_labels, classes)).to(device) \
        if config.balance == "weights" else None
    autocast = autocast_for(device, config.precision)
    if config.batch_size == AUTO_BATCH:
        config.batch_size = saved_batch_size(run_dir) or auto_batch_size(
            config, model, device, in_chans=dataset.channels, image_size=size,
            num_classes=len(dataset.classes), autocast=autocast, train_size=len(train),
            precision=resolved_precision(device, config.precision))
    flip, flip_reason = resolve_flip(config.flip, dataset)
    shift, shift_reason = resolve_shift(config.pad_crop, dataset, size)
    data_fit = {"flip": flip, "flip_reason": flip_reason, "tta_flip": config.tta_flip and flip,
                "shift": shift, "shift_reason": shift_reason,
                "resize": resize, "resize_reason": resize_reason, "balance": config.balance,
                "imbalance_ratio": (imbalance(dataset) or {}).get("ratio")}
    if is_main():  # under torchrun, rank 0 alone writes the run folder
        write_model_card(run_dir, config, dataset, size, mean, std, data_fit)
    forward = model
    if config.compile:
        forward = CompiledForward(model, compile_modes(device, size))
    return PreparedRun(**data_fit, class_weights=weights,
        device=device, dataset=dataset, image_size=size, train=train, val=val, test=test,
        mean=torch.tensor(mean, device=device), std=torch.tensor(std, device=device),
        model=model, optimizer=make_optimizer(config, model), autocast=autocast,
        forward=forward, steps_per_epoch=steps_per_epoch(len(train), config.batch_size),
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
    if config.model in PRETRAINED_NAMES:
        data_config = pretrained_data_config(name=config.model)
        mean, std = list(data_config["mean"]), list(data_config["std"])
        if dataset.channels == 1:
            return [sum(mean) / 3], [sum(std) / 3]
        return mean, std
    return channel_stats(images, index=stats_sample(np.sort(train_index), images))


def build_model(config: TrainConfig, dataset: Dataset, size: int) -> torch.nn.Module:
    model = create_model(config.extra.get("spec") or config.model, in_chans=dataset.channels,
                         num_classes=len(dataset.classes), image_size=size,
                         weights=config.weights, cache_dir=home() / "weights")
    if config.init_from:
        source = runs_dir() / config.init_from
        same_classes = (source / MODEL_CARD).exists() and \
            read_model_card(source)["classes"] == dataset.classes
        load_matching_weights(model, weights_file(source), keep_head=same_classes)
    return model


def attach(prepared: PreparedRun, config: TrainConfig) -> None:
    """Make `prepared` one rank of the process group this process is in (no-op outside one): DDP
    around the model, this rank's share of every batch, collectives for the loop."""
    if not joined() or dist.get_world_size() < 2:
        return

    check_world(config, dist.get_world_size(), len(prepared.train))
    on_cuda = prepared.device.type == "cuda"
    has_batchnorm = any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
                        for module in prepared.model.modules())
    ranks = ProcessGroup(prepared.device, config.batch_size,
                         sync_batchnorm=on_cuda and has_batchnorm)
    if ranks.sync_batchnorm:  # the same parameter objects: the optimizer still holds them
        prepared.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(prepared.model, ranks.group)
    ddp = DistributedDataParallel(
        prepared.model, device_ids=[torch.cuda.current_device()] if on_cuda else None,
        process_group=ranks.group,
        find_unused_parameters=config.freeze_epochs > 0)  # a frozen backbone gets no gradients
    # compiled in the default mode: CUDA graphs (reduce-overhead) do not mix with DDP's hooks
    compiled = isinstance(prepared.forward, CompiledForward)
    prepared.forward = CompiledForward(ddp) if compiled else ddp
    prepared.train = ShardedSplit(prepared.train, ranks.rank, ranks.world_size)
    prepared.ranks = ranks
