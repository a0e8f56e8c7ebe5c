"""Named training recipes: a whole TrainConfig chosen in one step, adapted to the dataset.

"speed-run" follows the CIFAR-10 speed runs (Myrtle's ResNet-9 / DAWNBench, hlb-CIFAR10,
cifar10-airbench): a ResNet-9 with BatchNorm, large batches, Nesterov SGD at a high peak rate
with a one-cycle schedule, label smoothing 0.2, light flip-and-shift augmentation, no weight
decay on BatchNorm and biases (core.training.optim.make_optimizer), and flip test-time augmentation.
It adapts to the data: the dataset's own image size (at most 64 px, where it is meant to be
fast), a smaller batch on small training sets so an epoch still has several steps (the rate
scaled linearly with it), more epochs when there are few steps in all, and torch.compile only
where a GPU can use it. Explicit settings override anything a recipe chooses.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from core.config import TrainConfig
from core.data.cache import default_image_size
from core.data.dataset import Dataset, load_dataset
from core.training.schedule import steps_per_epoch

SPEED_RUN_BATCH = 512
SPEED_RUN_LR = 0.4  # at SPEED_RUN_BATCH; the rate scales linearly with the batch
SPEED_RUN_EPOCHS = 10
MAX_SPEED_RUN_PX = 64  # larger images are trained at this size
MIN_STEPS_PER_EPOCH = 8  # a small training set gets a smaller batch rather than 1-2 steps
MIN_TOTAL_STEPS = 400  # a small training set gets more epochs, up to MAX_SPEED_RUN_EPOCHS
MAX_SPEED_RUN_EPOCHS = 40


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str  # a button label
    description: str  # one or two sentences for a tooltip / help text
    settings: Callable[[Dataset], dict]  # TrainConfig fields for this dataset


def speed_run_batch(train_images: int) -> int:
    """SPEED_RUN_BATCH, or the largest power of two giving MIN_STEPS_PER_EPOCH steps an epoch
    on a small training set (never more than the set itself)."""
    wanted = max(1, train_images // MIN_STEPS_PER_EPOCH)
    power = 2 ** int(math.log2(wanted))
    return max(1, min(SPEED_RUN_BATCH, power, train_images))


def cuda_available() -> bool:
    import torch  # here, so that listing recipes (python -m core --help) does not load torch

    return torch.cuda.is_available()


def training_images(dataset: Dataset) -> int:
    count = len(dataset.indices("train"))
    if count == 0:
        raise ValueError(f"Dataset {dataset.name} has no training images; re-import it with a "
                         "training split.")
    return count


def epochs_for(train_images: int, batch: int, at_least: int) -> int:
    """`at_least` epochs, more when an epoch has few steps (MIN_TOTAL_STEPS in all), capped."""
    steps = steps_per_epoch(train_images, batch)
    return min(MAX_SPEED_RUN_EPOCHS, max(at_least, math.ceil(MIN_TOTAL_STEPS / steps)))


def speed_run(dataset: Dataset) -> dict:
    size = default_image_size(dataset)
    train_images = training_images(dataset)
    batch = speed_run_batch(train_images)
    epochs = epochs_for(train_images, batch, SPEED_RUN_EPOCHS)
    image_size = min(size, MAX_SPEED_RUN_PX)
    return {
        "model": "resnet9", "epochs": epochs, "batch_size": batch,
        "optimizer": "sgd", "lr": round(SPEED_RUN_LR * batch / SPEED_RUN_BATCH, 6),
        "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
        "schedule": "onecycle", "warmup_epochs": 0.0, "label_smoothing": 0.2,
        "image_size": None if image_size == size else image_size,
        "flip": "auto", "pad_crop": max(1, round(image_size / 16)), "jitter": 0.0,
        "tta_flip": True, "ema_decay": None, "patience": 0, "precision": "auto",
        "compile": cuda_available(), "freeze_epochs": 0, "init_from": None,
    }


CPU_QUICK_BATCH = 256  # large enough that two cores are busy, small enough for 210 steps an epoch
CPU_QUICK_EPOCHS = 4  # tiny-bn-pooled: 0.93 on Fashion-MNIST at 5, 0.928 at 4 (bench/RESULTS.md)
CPU_QUICK_LR = 0.006  # AdamW at CPU_QUICK_BATCH: BatchNorm takes a rate 3× tiny-cnn's default
CPU_ACCURATE_BATCH = 128
CPU_ACCURATE_EPOCHS = 12
CPU_ACCURATE_LR = 0.005


def fast_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles: Xeon Sapphire Rapids and later).
    There autocast to bf16 trains tiny-bn about 1.6× and tiny-cnn about 2× faster than fp32
    (bench/RESULTS.md); elsewhere bf16 is emulated and slower, so fp32 stays."""
    import torch  # here, as in cuda_available

    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def cpu_recipe(dataset: Dataset, batch: int, epochs: int, lr: float) -> dict:
    """tiny-bn-pooled (tiny-cnn with BatchNorm after each pool: higher rates, a quarter of the
    BatchNorm work) with AdamW on a one-cycle rate, label smoothing 0.1, flip and shift where the
    data allows (core.data.mirror, shift), flip test-time augmentation, bf16 where the CPU has
    it in hardware."""
    size = default_image_size(dataset)
    train_images = training_images(dataset)
    batch = min(batch, speed_run_batch(train_images))
    image_size = min(size, MAX_SPEED_RUN_PX)
    return {
        "model": "tiny-bn-pooled", "epochs": epochs_for(train_images, batch, epochs),
        "batch_size": batch, "optimizer": "adamw", "lr": lr, "weight_decay": 5e-4,
        "schedule": "onecycle", "warmup_epochs": 0.0, "label_smoothing": 0.1,
        "image_size": None if image_size == size else image_size,
        "flip": "auto", "pad_crop": None, "jitter": 0.0,
        "tta_flip": True, "ema_decay": None, "patience": 0,
        "precision": "bf16" if fast_cpu_bf16() and not cuda_available() else "auto",
        "compile": False, "freeze_epochs": 0, "init_from": None,
    }


def cpu_quick(dataset: Dataset) -> dict:
    """The fastest road to a good model without a GPU: a network as cheap as tiny-cnn but with
    BatchNorm, so a few epochs at a high rate go far (measured: bench/RESULTS.md, "Time to
    accuracy")."""
    return cpu_recipe(dataset, CPU_QUICK_BATCH, CPU_QUICK_EPOCHS, CPU_QUICK_LR)


def cpu_accurate(dataset: Dataset) -> dict:
    """cpu-quick's network and settings, longer: more epochs at a smaller batch."""
    return cpu_recipe(dataset, CPU_ACCURATE_BATCH, CPU_ACCURATE_EPOCHS, CPU_ACCURATE_LR)


def ema_decay_for(total_steps: int) -> float:
    """An EMA horizon of about a tenth of the run (at least 10 steps)."""
    return round(1 - 1 / max(10.0, total_steps / 10), 4)


def speed_run_ema(dataset: Dataset) -> dict:
    settings = speed_run(dataset)
    steps = settings["epochs"] * steps_per_epoch(training_images(dataset), settings["batch_size"])
    return settings | {"ema_decay": ema_decay_for(steps)}


RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (
    Recipe("speed-run", "Speed run (ResNet-9)",
           "The CIFAR-10 speed-run recipe for small images: ResNet-9, batch up to 512, Nesterov "
           "SGD with a one-cycle rate, label smoothing 0.2, flip and shift augmentation, flip "
           "test-time augmentation.", speed_run),
    Recipe("speed-run-ema", "Speed run + EMA",
           "The speed run, evaluating an exponential moving average of the weights (often a "
           "little more accurate and steadier from epoch to epoch).", speed_run_ema),
    Recipe("cpu-quick", "Quick on a CPU",
           "For a machine without a GPU: tiny-bn-pooled (two conv blocks with BatchNorm), "
           "4 epochs at batch 256, AdamW with a one-cycle rate, label smoothing 0.1, flip and "
           "shift augmentation, flip test-time augmentation, bf16 where the CPU has it.",
           cpu_quick),
    Recipe("cpu-accurate", "Accurate on a CPU",
           "cpu-quick for longer: 12 epochs at batch 128 (about twice the time, a point more "
           "accurate).", cpu_accurate),
)}


def suggested_recipe(has_gpu: bool) -> str:
    """The recipe to offer first: the speed run where a GPU can carry a ResNet-9, the tiny-cnn
    recipe where training runs on the CPU."""
    return "speed-run" if has_gpu else "cpu-quick"


def recipe_settings(name: str, dataset: Dataset) -> dict:
    """TrainConfig fields (without `data`) of recipe `name` adapted to `dataset`."""
    if name not in RECIPES:
        raise ValueError(f"There is no recipe {name!r}; choose one of {', '.join(RECIPES)}.")
    return RECIPES[name].settings(dataset) | {"recipe": name}


def recipe_config(recipe: str, data: str, overrides: dict | None = None, /) -> TrainConfig:
    """The config of `recipe` for dataset `data`; `overrides` (any TrainConfig settings, the
    run's `name` too) win over what the recipe chose, and are recorded (mark_recipe_changes)."""
    dataset = load_dataset(data)
    settings = recipe_settings(recipe, dataset)
    return mark_recipe_changes(TrainConfig(**(settings | {"data": data} | (overrides or {}))),
                               dataset)


RECIPE_CHANGED = "recipe_changed"  # config.extra's list of the recipe's settings changed


def same_value(a: object, b: object) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def recipe_changes(config: TrainConfig, dataset: Dataset) -> list[str]:
    """The settings the config's recipe chose for `dataset` that the config no longer holds,
    in schema order; [] without a recipe, or an unknown one."""
    if config.recipe not in RECIPES:
        return []
    chosen = recipe_settings(config.recipe, dataset)
    return [field.name for field in dataclasses.fields(TrainConfig)
            if field.name in chosen and field.name != "recipe"
            and not same_value(getattr(config, field.name), chosen[field.name])]


def mark_recipe_changes(config: TrainConfig, dataset: Dataset) -> TrainConfig:
    """The config with extra["recipe_changed"] naming what was changed from its recipe, so the
    run says "cpu-quick (modified)" rather than passing for the recipe itself."""
    extra = {key: value for key, value in config.extra.items() if key != RECIPE_CHANGED}
    changed = recipe_changes(config, dataset)
    return dataclasses.replace(config, extra=extra | ({RECIPE_CHANGED: changed} if changed
                                                      else {}))
