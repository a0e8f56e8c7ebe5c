"""The training config: one dataclass, saved as JSON beside every run, and the one schema of
every training setting.

Each field carries its metadata (`Setting`): the label and help a person reads, the choices
or the range it takes, and the group it belongs to. The command line (core.cli.train) and the
Train and Sweep forms (pages) build their flags and widgets from it, and `validate()` checks
against it, so a setting is described once, here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
RESIZES = ("auto", "crop", "squish", "pad")  # core.data.transforms; auto: from aspect ratios
BALANCES = ("none", "weights", "sampler")  # core.data.balance
SWITCH = ("auto", "on", "off")  # a switch the data can decide (auto); `--no-NAME` means off
AUTO_BATCH = 0  # batch_size meaning "find the largest that fits the device"
AUTO_LR = 0.0  # lr meaning "run the LR range test first and train at its suggestion"
MIN_LR = 1e-6  # the smallest learning rate a run takes (other than AUTO_LR)
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 2e-3, "rmsprop": 1e-3}  # peak learning rates

# Where a setting sits on the Train form (and the order of `--help`'s groups).
MAIN, OPTIMISATION, AUGMENTATION, EVALUATION, DEVICE, TRANSFER, RUN = (
    "main", "optimisation", "augmentation", "evaluation", "device", "transfer", "run")
GROUPS = (MAIN, OPTIMISATION, AUGMENTATION, EVALUATION, DEVICE, TRANSFER, RUN)


@dataclass(frozen=True)
class Setting:
    """What a person needs to know about one training setting."""
    label: str  # the form's label
    help: str  # one or two sentences: the flag's help and the widget's tooltip
    group: str = MAIN
    choices: tuple = ()  # the values it may take (empty: any of its type)
    low: float | None = None  # the smallest value it may take (inclusive)
    high: float | None = None  # the largest (inclusive)
    step: float | None = None  # the form's step for a number
    slider: bool = False  # the form shows a slider (a small range), not a number box
    cli: bool = True  # a `--flag` of `python -m core train`
    unset: str = ""  # what leaving an optional number unset means, shown in its empty box


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
            **meta: Any) -> Any:
    """A dataclass field with its Setting."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"setting": Setting(**meta)})
    return field(default=default, metadata={"setting": Setting(**meta)})


@dataclass
class TrainConfig:
    data: str = setting(label="Dataset", help="The dataset's name in the workspace.")
    model: str = setting(
        "tiny-cnn", label="Model",
        help="A preset (tiny-cnn, small-cnn, resnet9, …), any timm architecture by name, or "
             "the path to a JSON layer spec.")
    epochs: int = setting(10, label="Epochs", help="Passes over the training set.",
                          low=1, high=100_000)
    batch_size: int = setting(
        64, label="Batch size", low=AUTO_BATCH, high=65_536,
        help="Images per step; auto (0): the largest that fits the GPU, found once and "
             "remembered (128 on a CPU).")
    lr: float | None = setting(
        None, label="Peak learning rate", low=AUTO_LR, high=10.0,
        help="The schedule scales this over the run; unset: a default for the optimizer "
             "(sgd 0.05, adam 0.001, adamw 0.002, rmsprop 0.001); auto (0): an LR range test "
             "of at most half a minute first picks it.")
    optimizer: str = setting("adamw", label="Optimizer", choices=OPTIMIZERS,
                             help="How the weights follow their gradients.")
    momentum: float = setting(0.9, label="Momentum (sgd, rmsprop)", group=OPTIMISATION,
                              low=0.0, high=0.999, help="Momentum of sgd and rmsprop.")
    nesterov: bool = setting(True, label="Nesterov momentum (sgd)", group=OPTIMISATION,
                             help="Nesterov's look-ahead form of sgd's momentum.")
    weight_decay: float = setting(
        5e-4, label="Weight decay", group=OPTIMISATION, low=0.0, high=1.0,
        help="L2 penalty on the weights (never on biases or normalisation layers).")
    schedule: str = setting("onecycle", label="Schedule", choices=SCHEDULES,
                            help="How the learning rate moves over the run; see the preview.")
    warmup_epochs: float = setting(
        0.0, label="Warm-up epochs", group=OPTIMISATION, low=0.0, high=100.0, step=0.5,
        help="A linear warm-up before the cosine, step and constant schedules (one-cycle has "
             "its own).")
    step_size: int = setting(10, label="Step size (epochs)", group=OPTIMISATION, low=1,
                             high=1000, help="Step schedule: epochs between decays.")
    gamma: float = setting(0.1, label="Step decay factor", group=OPTIMISATION, low=0.01,
                           high=1.0, help="Step schedule: the factor of each decay.")
    label_smoothing: float = setting(
        0.0, label="Label smoothing", group=OPTIMISATION, low=0.0, high=0.5, step=0.05,
        help="Train towards slightly softened targets (0.1–0.2 often helps).")
    balance: str = setting(
        "none", label="Class balance", group=OPTIMISATION, choices=BALANCES,
        help="For imbalanced classes: weights (a class-weighted loss) or sampler (draw every "
             "class equally often); none: every image counts once.")
    image_size: int | None = setting(
        None, label="Image size", low=8, high=1024,
        help="Pixels per side the images are resized to; unset: the dataset's own size.")
    resize: str = setting(
        "auto", label="Resize mode", group=AUGMENTATION, choices=RESIZES,
        help="How images become squares, the same in training, prediction and export: crop "
             "(shorter side, then the centre), squish (stretch) or pad (letterbox); auto: crop "
             "for near-square images, squish up to 2:1, pad beyond.")
    flip: str = setting(
        "auto", label="Random horizontal flip", group=AUGMENTATION, choices=SWITCH,
        help="Mirror half of the training images at random (and average each test image with "
             "its mirror when flip test-time augmentation is on); auto: only when mirrored "
             "images keep their class, tested on the dataset (core.data.mirror).")
    pad_crop: int | None = setting(
        None, label="Random shift (pixels)", group=AUGMENTATION, low=0, high=8, unset="auto",
        help="Shift each training image by up to this many pixels (0: off); unset (auto): "
             "1 px per 16 px where objects sit at different places from image to image, off "
             "where every image is registered alike, as digits are (core.data.shift).")
    jitter: float = setting(0.0, label="Colour jitter", group=AUGMENTATION, low=0.0, high=0.5,
                            step=0.05, slider=True,
                            help="Brightness and contrast drawn from 1 ± this.")
    patience: int = setting(
        0, label="Early stopping patience (0 = off)", group=EVALUATION, low=0, high=100,
        help="Stop after this many epochs without a lower validation loss.")
    tta_flip: bool = setting(
        False, label="Flip test-time augmentation", group=EVALUATION,
        help="Evaluate each image and its mirror image, averaging the two (only when the run "
             "flips: a mirror that changes the label would mislead it).")
    ema_decay: float | None = setting(
        None, label="EMA decay", group=EVALUATION, low=0.5, high=0.99999, step=0.001,
        help="Validate, test and keep as best an exponential moving average of the weights "
             "(0.999: about the last 1,000 steps); unset (or 0 on the command line): off.")
    budget_minutes: float | None = setting(
        None, label="Time budget (minutes)", group=EVALUATION, low=0.01, high=100_000.0,
        help="End at the first epoch boundary that would pass this many minutes.")
    seed: int = setting(0, label="Seed", group=EVALUATION, low=0, high=2**31 - 1,
                        help="Seeds the weights, the batch order and the augmentation.")
    device: str = setting("auto", label="Device", group=DEVICE, choices=DEVICES,
                          help="Where to train; auto: a GPU when there is one.")
    gpus: int = setting(
        1, label="GPUs", group=DEVICE, low=1, high=1024,
        help="Train data-parallel on this many GPUs (torchrun); the batch size is then the "
             "global batch, split evenly, and the learning rate is not scaled.")
    precision: str = setting("auto", label="Precision", group=DEVICE, choices=PRECISIONS,
                             help="auto: bf16 on a GPU that has it, else fp32.")
    compile: bool = setting(
        False, label="Fastest (torch.compile)", group=DEVICE,
        help="Compile the network (CUDA graphs for small images on a GPU), falling back to "
             "plain PyTorch if compiling fails.")
    freeze_epochs: int = setting(
        0, label="Frozen-backbone epochs", group=TRANSFER, low=0, high=100,
        help="Pretrained weights: train only the new head for this many epochs first.")
    init_from: str | None = setting(
        None, label="Start from an earlier run's weights", group=TRANSFER,
        help="A run id whose weights start this run (a new head if the classes differ).")
    weights: str | None = setting(
        None, label="Start from weights", group=TRANSFER,
        help="timm architectures: a weights file on this machine (.safetensors, or a timm "
             ".pth/.bin checkpoint), or `pretrained` for timm's ImageNet weights, downloaded "
             "through the Hugging Face Hub on first use and cached in the workspace. The "
             "classifier head is new.")
    name: str | None = setting(None, label="Run name (optional)", group=RUN,
                               help="A name for the run.")
    recipe: str | None = setting(None, label="Recipe", group=RUN, cli=False,
                                 help="The recipe (core.training.recipes) this config started "
                                      "from, if any.")
    extra: dict = setting(factory=dict, label="Extra", group=RUN, cli=False,
                          help="A custom network's layer spec (`spec`).")

    def __post_init__(self) -> None:
        if isinstance(self.flip, bool):  # configs saved before flip became auto|on|off
            self.flip = "on" if self.flip else "off"

    def peak_lr(self) -> float:
        """The peak rate; an auto rate not found yet (previews) counts as the default."""
        return self.lr if self.lr not in (None, AUTO_LR) else DEFAULT_LR[self.optimizer]

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
        problems = [problem for name, meta in settings().items()
                    if (problem := out_of_schema(name, meta, getattr(self, name)))]
        if self.gpus > 1 and (self.batch_size == AUTO_BATCH or self.batch_size % self.gpus):
            problems.append(f"with {self.gpus} GPUs the batch size is the global batch: give a "
                            f"multiple of {self.gpus}, so each GPU takes an equal share")
        if self.lr is not None and AUTO_LR < self.lr < MIN_LR:
            problems.append(f"the peak learning rate must be at least {MIN_LR:g} (or 0: auto)")
        if self.gpus > 1 and self.lr == AUTO_LR:
            problems.append("an auto learning rate is found in one process: give a rate for a "
                            "run on several GPUs (python -m core lr-find suggests one)")
        if self.gpus > 1 and self.device == "mps":
            problems.append("several GPUs need CUDA (or the CPU): set device to auto or cuda")
        if problems:
            raise ValueError("Invalid training settings: " + "; ".join(problems) + ".")


def settings() -> dict[str, Setting]:
    """Every TrainConfig field's Setting, in field order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(TrainConfig)}


def value_type(name: str) -> type:
    """The type a setting's values have, from its annotation ("float | None" → float)."""
    spec = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    return {"int": int, "float": float, "str": str, "bool": bool, "dict": dict}[
        str(spec.type).split("|")[0].strip()]


def optional(name: str) -> bool:
    """Whether a setting may be unset (None)."""
    spec = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    return "None" in str(spec.type)


def default_of(name: str) -> Any:
    """The default value of TrainConfig field `name`."""
    spec = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default  # dataclasses.MISSING for `data`, which has none


def out_of_schema(name: str, meta: Setting, value: Any) -> str | None:
    """Why `value` is not a valid `name`, or None. Unset (None) optional settings are valid."""
    label = meta.label.split(" (")[0]
    label = label if label[:2].isupper() else label[0].lower() + label[1:]  # "EMA decay"
    if value is None:
        return None if default_of(name) is None else f"{label} must be set"
    if meta.choices and value not in meta.choices:
        return f"{name.replace('_', ' ')} must be one of {', '.join(meta.choices)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if meta.low is not None and value < meta.low:
        return f"{label} must be at least {meta.low:g}" + ("" if meta.high is None else
                                                           f" (and at most {meta.high:g})")
    if meta.high is not None and value > meta.high:
        return f"{label} must be at most {meta.high:g}"
    return None
