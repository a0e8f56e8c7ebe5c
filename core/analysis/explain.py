"""Grad-CAM: where in the image the model looked for a class, as a heat map and an overlay.

Hand-written (one forward with hooks, one backward) rather than the `grad-cam` package,
which pulls in OpenCV and matplotlib. Works for the presets, JSON-spec models and timm
models alike, because the target layer is found from what the forward pass produces.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.serving.infer import LoadedModel


def grad_cam(loaded: LoadedModel, image: Image.Image, class_index: int | None = None,
             layer: nn.Module | None = None) -> np.ndarray:
    """Heat map (H×W float32 in [0, 1], at the model's input size) of the evidence for
    `class_index` (default: the predicted class).

    The feature map is `layer`'s output, or by default the output of the last module that
    produces a 4-D map larger than 1×1: the last conv stage of a CNN, before global pooling.
    """
    model = loaded.model
    x = loaded.to_batch([image]).requires_grad_(True)  # a graph even if weights are frozen
    logits, candidates = capture_feature_maps(model, x, layer)
    if not candidates:
        raise ValueError("The model produces no spatial feature map to explain "
                         "(no 4-D output larger than 1x1 before its head).")
    index = int(logits[0].argmax()) if class_index is None else int(class_index)
    if not 0 <= index < logits.shape[1]:
        raise ValueError(f"class_index {index} is out of range for {logits.shape[1]} classes.")
    grads = torch.autograd.grad(logits[0, index], candidates, allow_unused=True)
    # The last map the class score depends on (a hooked map may sit off the score's path).
    used = [(fmap, grad) for fmap, grad in zip(candidates, grads, strict=True)
            if grad is not None]
    if not used:
        raise ValueError("The class score does not depend on the chosen layer.")
    features, grad = used[-1]
    weights = grad.mean(dim=(2, 3), keepdim=True)  # one weight per channel: pooled gradient
    cam = F.relu((weights * features).sum(dim=1, keepdim=True)).detach().float()
    size = loaded.card["image_size"]
    cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    cam = cam.cpu().numpy()
    peak = float(cam.max())
    return (cam / peak if peak > 0 else np.zeros_like(cam)).astype(np.float32)


def capture_feature_maps(model: nn.Module, x: torch.Tensor, layer: nn.Module | None,
                         ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run the model once, keeping every 4-D output larger than 1×1 (in the order the modules
    finish), or only `layer`'s output when one is given."""
    candidates: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.requires_grad \
                and (layer is not None or output.shape[2] * output.shape[3] > 1):
            candidates.append(output)

    hooked = [layer] if layer is not None else [m for m in model.modules() if m is not model]
    handles = [module.register_forward_hook(keep) for module in hooked]
    try:
        with torch.enable_grad():
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return logits.float(), candidates


def overlay(image: Image.Image, heatmap: np.ndarray, opacity: float = 0.5) -> Image.Image:
    """The image with the heat map blended over it (RGB, same size as `image`).

    The model saw the centre square of the image (core.data.transforms.fit_image), so the
    heat map covers that square; the strips outside it are left untinted."""
    base = image.convert("RGB")
    width, height = base.size
    side = min(width, height)
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0.0, 1.0)
    heat_image = Image.fromarray(np.rint(heat * 255).astype(np.uint8), mode="L")
    heat_image = heat_image.resize((side, side), Image.Resampling.BILINEAR)
    colours = Image.fromarray(colormap(np.asarray(heat_image, dtype=np.float32) / 255))
    left, top = (width - side) // 2, (height - side) // 2
    square = base.crop((left, top, left + side, top + side))
    blended = Image.blend(square, colours, float(np.clip(opacity, 0.0, 1.0)))
    result = base.copy()
    result.paste(blended, (left, top))
    return result


def colormap(values: np.ndarray) -> np.ndarray:
    """Jet-like colours for values in [0, 1]: dark blue, cyan, yellow, red. uint8 …×3."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25])  # where red, green and blue peak
    rgb = np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0)
    return np.rint(rgb * 255).astype(np.uint8)
