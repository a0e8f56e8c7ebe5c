"""The training config: one dataclass, saved as JSON beside every run."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
AUTO_BATCH = 0  # batch_size meaning "find the largest that fits the device"
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 2e-3, "rmsprop": 1e-3}  # peak learning rates


@dataclass
class TrainConfig:
    data: str  # dataset name in the workspace
    model: str = "tiny-cnn"  # preset, timm name, or path to a JSON layer spec
    epochs: int = 10
    batch_size: int = 64  # AUTO_BATCH (0): the largest that fits the device (core.batch_size)
    lr: float | None = None  # peak learning rate; None: DEFAULT_LR for the optimizer
    optimizer: str = "adamw"
    momentum: float = 0.9  # sgd momentum, rmsprop momentum
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup_epochs: float = 0.0  # linear warmup before cosine/step/constant (one-cycle has its own)
    step_size: int = 10  # epochs between decays for the step schedule
    gamma: float = 0.1  # decay factor for the step schedule
    label_smoothing: float = 0.0
    image_size: int | None = None  # None: the dataset's own size (see cache.default_image_size)
    flip: bool = True
    pad_crop: int = 2  # pixels of random translation (reflect-pad and crop)
    jitter: float = 0.0  # colour jitter strength
    patience: int = 0  # early stopping: epochs without val-loss improvement; 0 = off
    tta_flip: bool = False  # evaluate on each image and its mirror image, averaging the logits
    ema_decay: float | None = None  # evaluate an EMA of the weights (e.g. 0.999); None: off
    budget_minutes: float | None = None  # end at the first epoch boundary that would pass this
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    gpus: int = 1  # data-parallel ranks, one per GPU (torchrun + DDP, core.distributed); with
    # several, batch_size is the GLOBAL batch, split evenly, and the learning rate is not scaled
    precision: str = "auto"  # auto (bf16 on CUDA that has it, else fp32) | fp32 | bf16
    compile: bool = False  # "fastest": torch.compile (CUDA graphs for small images on CUDA),
    # falling back to plain compile, then eager, if it fails
    freeze_epochs: int = 0  # pretrained models: epochs with the backbone frozen
    init_from: str | None = None  # run id whose weights start this run (new head if classes differ)
    name: str | None = None
    recipe: str | None = None  # the core.recipes preset this config started from, if any
    extra: dict = field(default_factory=dict)

    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**data)

    def validate(self) -> None:
        """Raise ValueError with a sentence a person can act on."""
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.epochs < 1:
            problems.append("epochs must be at least 1")
        if self.batch_size < 0:
            problems.append("batch size must be at least 1 (or 0 / auto: the largest that fits)")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            problems.append("EMA decay must be between 0 and 1, such as 0.999 (or off)")
        if self.lr is not None and not 0 < self.lr < 100:
            problems.append("learning rate must be a positive number such as 0.001")
        if not 0 <= self.label_smoothing < 1:
            problems.append("label smoothing must be in [0, 1)")
        if self.image_size is not None and not 8 <= self.image_size <= 1024:
            problems.append("image size must be between 8 and 1024 pixels")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            problems.append("the time budget must be a positive number of minutes")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            problems.append("device must be auto, cpu, cuda or mps")
        if self.precision not in ("auto", "fp32", "bf16"):
            problems.append("precision must be auto, fp32 or bf16")
        if self.gpus < 1:
            problems.append("the number of GPUs must be at least 1")
        elif self.gpus > 1 and (self.batch_size == AUTO_BATCH or self.batch_size % self.gpus):
            problems.append(f"with {self.gpus} GPUs the batch size is the global batch: give a "
                            f"multiple of {self.gpus}, so each GPU takes an equal share")
        if self.gpus > 1 and self.device == "mps":
            problems.append("several GPUs need CUDA (or the CPU): set device to auto or cuda")
        if problems:
            raise ValueError("Invalid training settings: " + "; ".join(problems) + ".")
