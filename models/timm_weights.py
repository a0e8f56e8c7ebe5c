"""Starting a timm architecture from weights: a file on disk (safetensors, or a checkpoint
timm saved), or ImageNet weights timm downloads through the Hugging Face Hub on explicit
request ("pretrained"). Either way timm loads them (`pretrained_cfg_overlay={"file": …}` for a
file): the classifier head is new for the task's classes, and a first layer made for 3-channel
images is adapted to grayscale ones. A .pth/.bin checkpoint is read with torch's weights-only
unpickler, which runs no code."""

from __future__ import annotations

import logging
from pathlib import Path

import timm
from timm.models import load_state_dict
from torch import nn

from models.errors import ModelError

log = logging.getLogger(__name__)

PRETRAINED = "pretrained"  # the `weights` value that asks timm to download ImageNet weights
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".pth.tar")


def weights_kwargs(name: str, weights: str | Path, cache_dir: Path | None) -> dict:
    """timm.create_model's arguments that load `weights` (a file, or PRETRAINED)."""
    if str(weights) == PRETRAINED:
        log.info("Fetching the ImageNet weights of %s through timm and the Hugging Face Hub "
                 "(first use only; cached in %s)", name, cache_dir or "the Hub's cache")
        return {"pretrained": True, "cache_dir": str(cache_dir) if cache_dir else None}
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(f"There is no weights file at {path}; give the path of a .safetensors "
                         "file or a timm checkpoint on this machine.")
    if not str(path).lower().endswith(WEIGHT_SUFFIXES):
        raise ModelError(f"{path.name} is not a weights file timm reads; give a .safetensors "
                         "file or a timm checkpoint (.pth, .bin).")
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}


def create_timm_from_weights(name: str, kwargs: dict, weights: str | Path,
                             cache_dir: Path | None) -> nn.Module:
    """timm.create_model(name, **kwargs) starting from `weights`, every failure a ModelError
    that says what to do."""
    kwargs = kwargs | weights_kwargs(name, weights, cache_dir)
    if str(weights) == PRETRAINED and not timm.get_pretrained_cfg(name):
        raise ModelError(f"timm has no ImageNet weights for {name!r}; choose another "
                         "architecture, or pass weights of your own with --weights FILE.")
    try:
        model = timm.create_model(name, **kwargs)
    except ModelError:
        raise
    except RuntimeError as error:
        if str(weights) == PRETRAINED:
            raise offline(name) from error
        raise ModelError(f"The weights in {Path(weights).name} do not fit timm's {name!r} "
                         f"({str(error).splitlines()[0]}); use a checkpoint of that same "
                         "architecture.") from error
    except Exception as error:  # noqa: BLE001 - the Hub's, requests' and the OS's errors alike
        if str(weights) == PRETRAINED:
            raise offline(name) from error
        raise ModelError(f"{Path(weights).name} could not be read as weights "
                         f"({type(error).__name__}: {error}).") from error
    if str(weights) != PRETRAINED:
        check_coverage(model, Path(weights).expanduser(), name)
    return model


def check_coverage(model: nn.Module, path: Path, name: str) -> None:
    """timm loads a file loosely once the head changes (strict=False): make sure the file held
    every layer of the backbone, so weights of another network never pass silently."""
    held = set(load_state_dict(str(path)))
    head = {f"{model.pretrained_cfg.get('classifier', '')}.{suffix}"
            for suffix in ("weight", "bias")}
    missing = [key for key in model.state_dict()
               if key not in held and key not in head and not key.endswith("num_batches_tracked")]
    if missing:
        raise ModelError(f"The weights in {path.name} do not fit timm's {name!r}: "
                         f"{len(missing)} of its layers are not in the file (such as "
                         f"{missing[0]}); use a checkpoint of that same architecture.")


def offline(name: str) -> ModelError:
    return ModelError(f"The ImageNet weights of {name!r} cannot be fetched from the Hugging "
                      "Face Hub (no internet connection?); download them on a machine that "
                      "has one and start from the file with --weights FILE (a .safetensors "
                      "file or timm checkpoint).")
