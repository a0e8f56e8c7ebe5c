"""A model's raw outputs on a split, image by image: logits, the penultimate features (what
the last linear layer reads), and the logits with flip test-time augmentation when asked."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from core.data.loader import DeviceSplit, to_model_input


@dataclass
class Outputs:
    logits: np.ndarray  # N×K float32, one plain forward pass (what inference serves)
    labels: np.ndarray  # N int64
    features: np.ndarray | None  # N×D float32, the classifier's input; None without one
    tta_logits: np.ndarray | None = None  # N×K, mean with the flipped image (tta_flip runs)

    @property
    def scored_logits(self) -> np.ndarray:
        """The logits the run's test accuracy comes from (with TTA when the run uses it)."""
        return self.tta_logits if self.tta_logits is not None else self.logits


def classifier_layer(model: torch.nn.Module) -> torch.nn.Linear | None:
    """The last linear layer (timm's classifier, a preset's final Linear); None if none."""
    module = model.module if hasattr(model, "module") else model  # DDP, EMA wrappers
    if hasattr(module, "get_classifier"):
        head = module.get_classifier()
        if isinstance(head, torch.nn.Linear):
            return head
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    return linears[-1] if linears else None


@contextlib.contextmanager
def features_of(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """While open, each forward pass appends the classifier's input (flattened) to the list."""
    captured: list[torch.Tensor] = []
    layer = classifier_layer(model)
    if layer is None:
        yield captured
        return
    handle = layer.register_forward_pre_hook(
        lambda _, inputs: captured.append(inputs[0].detach().float().flatten(1)))
    try:
        yield captured
    finally:
        handle.remove()


@torch.no_grad()
def collect_outputs(model: torch.nn.Module, split: DeviceSplit, mean: torch.Tensor,
                    std: torch.Tensor, *, autocast: Callable = contextlib.nullcontext,
                    tta_flip: bool = False, batch_size: int = 512,
                    limit_index: torch.Tensor | None = None) -> Outputs:
    """Outputs of `model` on `split` (or on its images at `limit_index`), in split order."""
    was_training = model.training
    model.eval()
    logits, tta, feats, labels = [], [], [], []
    with features_of(model) as captured:
        for images, y in batches(split, split.inference_batch(batch_size), limit_index):
            x = to_model_input(images, mean, std)
            with autocast():
                out = model(x).float()
                if captured:
                    feats.append(captured.pop(0).cpu())
                    captured.clear()
                if tta_flip:
                    tta.append(((out + model(x.flip(3)).float()) / 2).cpu())
                    captured.clear()
            logits.append(out.cpu())
            labels.append(y.cpu())
    model.train(was_training)
    classes = getattr(classifier_layer(model), "out_features", 0)
    return Outputs(logits=joined(logits, np.zeros((0, classes), np.float32)),
                   labels=joined(labels, np.zeros(0, np.int64)),
                   features=joined(feats), tta_logits=joined(tta))


def joined(parts: list[torch.Tensor], empty: np.ndarray | None = None) -> np.ndarray | None:
    return torch.cat(parts).numpy() if parts else empty


def batches(split: DeviceSplit, batch_size: int, index: torch.Tensor | None):
    if index is None:
        yield from split.batches(batch_size, shuffle=False)
        return
    for start in range(0, len(index), batch_size):
        part = index[start:start + batch_size].to(split.images.device)
        yield split.images[part].to(split.device), split.labels[part.to(split.device)]
