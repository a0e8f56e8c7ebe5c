"""The one image-to-array transform shared by the cache (training) and inference."""

from __future__ import annotations

import numpy as np
from PIL import Image


def fit_image(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """Resize the shorter side to `size`, centre-crop to a square, return uint8 H×W×C."""
    image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array
