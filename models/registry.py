"""One entry point for every model: our presets, JSON layer specs, the pretrained
EfficientNet-Lite0/1/2, and any timm architecture (randomly initialised unless given weights)."""

import difflib
import logging
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from timm.models import get_pretrained_cfg_value
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models.errors import ModelError
from models.pretrained import PRETRAINED_NAMES, create_pretrained, lite_variant
from models.spec import build_from_spec, load_spec
from models.timm_weights import create_timm_from_weights

log = logging.getLogger(__name__)

PresetFactory = Callable[[int, int, int], nn.Module]  # (in_chans, num_classes, image_size)
MIN_IMAGE_SIZE = 16
_PRESETS: dict[str, PresetFactory] = {}


def register_preset(name: str) -> Callable[[PresetFactory], PresetFactory]:
    """Decorator recording a factory under `name`; its docstring's first line describes it."""

    def register(factory: PresetFactory) -> PresetFactory:
        if name in _PRESETS:
            raise ValueError(f"preset {name!r} is registered twice")
        _PRESETS[name] = factory
        return factory

    return register


def list_presets() -> list[str]:
    """Names of our own from-scratch presets, in registration order."""
    return list(_PRESETS)


def list_timm_models(filter: str = "") -> list[str]:
    """timm architecture names, optionally filtered by a wildcard pattern like 'resnet*'."""
    return timm.list_models(filter)


def list_models() -> list[str]:
    """Every name create_model accepts: presets, the pretrained models, then timm names."""
    return [*_PRESETS, *PRETRAINED_NAMES, *timm.list_models()]


def is_known_model(name: str) -> bool:
    """Whether create_model accepts this name (spec paths are not names)."""
    return name in _PRESETS or name in PRETRAINED_NAMES or timm.is_model(name)


def describe_model(name: str) -> str:
    """One line for people: what the named model is."""
    if name in _PRESETS:
        doc = _PRESETS[name].__doc__ or name
        return doc.strip().splitlines()[0]
    if name in PRETRAINED_NAMES:
        variant = lite_variant(name)
        return (f"{variant.title} pretrained on ImageNet ({variant.params} params), new "
                "classifier head.")
    if timm.is_model(name):
        return f"timm architecture {name!r}, trained from scratch (random initial weights)."
    raise ModelError(_unknown_name_message(name))


def create_model(
    name_or_spec: str | dict | Path, *, in_chans: int, num_classes: int, image_size: int,
    weights: str | Path | None = None, cache_dir: Path | None = None,
) -> nn.Module:
    """Build a model for in_chans x image_size x image_size images and num_classes outputs.

    name_or_spec is a preset name, a layer spec (dict, or path to a .json file),
    'efficientnet-lite0-imagenet' (lite1, lite2 likewise), or a timm architecture name.
    `weights` (timm architectures only): a weights file on disk, or "pretrained" for timm's
    ImageNet weights, downloaded on first use into `cache_dir` (models.timm_weights); the head
    is new either way.
    """
    _check_sizes(in_chans=in_chans, num_classes=num_classes, image_size=image_size)
    if weights and (not isinstance(name_or_spec, str) or not timm.is_model(name_or_spec)):
        raise ModelError("Weights files start timm architectures only (resnet18, convnext_atto, "
                         "…); choose one by name, or drop --weights.")
    if weights:
        return create_timm_from_weights(
            name_or_spec, _timm_kwargs(name_or_spec, in_chans, num_classes, image_size),
            weights, cache_dir)
    if isinstance(name_or_spec, dict):
        return build_from_spec(
            name_or_spec, in_chans=in_chans, num_classes=num_classes, image_size=image_size
        )
    if isinstance(name_or_spec, Path) or name_or_spec.lower().endswith(".json"):
        spec = load_spec(name_or_spec)
        return build_from_spec(
            spec, in_chans=in_chans, num_classes=num_classes, image_size=image_size
        )
    name = name_or_spec
    if name in _PRESETS:
        return _PRESETS[name](in_chans, num_classes, image_size)
    if name in PRETRAINED_NAMES:
        return create_pretrained(name, in_chans=in_chans, num_classes=num_classes)
    if timm.is_model(name):
        return _create_timm(name, in_chans=in_chans, num_classes=num_classes, image_size=image_size)
    raise ModelError(_unknown_name_message(name))


def model_profile(model: nn.Module, *, in_chans: int, image_size: int) -> dict:
    """Parameter counts, and FLOPs (2 per multiply-add) for one image; flops is None if
    counting fails."""
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "flops": _count_flops(model, in_chans, image_size),
    }


def _count_flops(model: nn.Module, in_chans: int, image_size: int) -> int | None:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    image = torch.zeros(1, in_chans, image_size, image_size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()  # batch-1 BatchNorm fails in train mode, and eval is what inference costs
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(image)
        return int(counter.get_total_flops())
    except Exception as error:  # noqa: BLE001  (the count is informative only; never stop a run)
        log.warning("could not count the FLOPs of %s: %s: %s", model.__class__.__name__,
                    error.__class__.__name__, error)
        return None
    finally:
        model.train(was_training)


def _check_sizes(**sizes: int) -> None:
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{key} must be a positive whole number, got {value!r}.")
    if sizes["image_size"] < MIN_IMAGE_SIZE:
        raise ModelError(
            f"image_size {sizes['image_size']} is too small; resize images to at least "
            f"{MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels."
        )


def _timm_kwargs(name: str, in_chans: int, num_classes: int, image_size: int) -> dict:
    kwargs = {"pretrained": False, "num_classes": num_classes, "in_chans": in_chans}
    if get_pretrained_cfg_value(name, "fixed_input_size"):
        kwargs["img_size"] = image_size  # ViT-style models size their position embeddings
    return kwargs


def _create_timm(name: str, *, in_chans: int, num_classes: int, image_size: int) -> nn.Module:
    kwargs = _timm_kwargs(name, in_chans, num_classes, image_size)
    try:
        return timm.create_model(name, **kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as err:
        raise ModelError(
            f"timm could not build {name!r} for {in_chans}-channel {image_size}px images "
            f"({err}); pick another architecture or image size."
        ) from err


def _unknown_name_message(name: str) -> str:
    by_lower = {candidate.lower(): candidate for candidate in list_models()}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)
    hint = f" Did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
    return (
        f"Unknown model {name!r}.{hint} Use a preset ({', '.join(_PRESETS)}), "
        f"{', '.join(map(repr, PRETRAINED_NAMES))}, a path to a .json layer spec, or a timm "
        "architecture; "
        "models.list_models() lists every name."
    )
