"""Starting a run from trained weights: which earlier runs can start which network, what of
their weights carries over, and when freezing the backbone makes sense."""

from __future__ import annotations

from pathlib import Path

import torch

from core.training.checkpoint import load_weights
from models import PRETRAINED_NAMES, list_presets
from models.pretrained import timm_arch_of

CUSTOM_NAME = "custom-cnn"  # the model name of a network built from a JSON layer spec


def same_network(model: str, other: str | None) -> bool:
    """Whether weights trained on network `other` fit network `model` (a custom network: any
    custom run; its layers whose shapes differ start fresh)."""
    if other is None:
        return False
    # a packaged-weights name and its timm architecture are one network (the same layer names)
    return (timm_arch_of(model) or model) == (timm_arch_of(other) or other)


def can_freeze(model: str, init_from: str | None, weights: str | None = None) -> bool:
    """Whether a frozen-backbone warm-up makes sense: the backbone must be trained already
    (the pretrained network, or a timm network starting from an earlier run's weights or from
    a weights file)."""
    timm_network = model not in list_presets() and model != CUSTOM_NAME
    return model in PRETRAINED_NAMES or (bool(init_from or weights) and timm_network)


def what_carries_over(source: list[str], target: list[str]) -> str:
    """What starting from a run with classes `source` keeps, for a dataset with `target`, as
    load_matching_weights does it: every layer whose shape matches."""
    if source == target:
        return ("Same classes as this dataset: every layer starts from that run, the classifier "
                "head included.")
    if len(source) != len(target):
        return (f"That run learned {len(source)} classes, this dataset has {len(target)}: the "
                "classifier head is new (randomly initialised); every other layer starts from "
                "that run's weights.")
    return ("That run learned other classes, as many as this dataset has: every layer starts "
            "from its weights, the head too, and fine-tuning re-learns what its outputs mean.")


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
