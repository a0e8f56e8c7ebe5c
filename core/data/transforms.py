"""The one image-to-array transform shared by the cache (training, validation, testing) and
inference (predict, the Classify page, export's parity check), and the choice of its resize mode.

Modes: `crop` (shorter side to the size, then the centre square), `squish` (stretch to the
square, Keras's default) and `pad` (longer side to the size, centred on black: a letterbox).
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import median

import numpy as np
from PIL import Image

RESIZE_MODES = ("crop", "squish", "pad")
# The default mode from the median aspect ratio (long side / short side) of the images: a
# crop keeps 1/ratio of the picture at full resolution, so up to CROP_MAX_RATIO (80% kept) it
# loses only a border; a squish keeps everything but stretches shapes by the ratio, which
# CNNs trained on it absorb while it stays moderate (up to PAD_FROM_RATIO, 2×); beyond that a
# crop would cut away over half and a squish would distort over 2×, so the image is padded.
CROP_MAX_RATIO = 1.25
PAD_FROM_RATIO = 2.0


def fit_image(image: Image.Image, size: int, channels: int, mode: str = "crop") -> np.ndarray:
    """The image as uint8 size×size×channels, resized by `mode` (RESIZE_MODES)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"Unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}.")
    image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    if (width, height) != (size, size):
        image = {"crop": crop, "squish": squish, "pad": pad}[mode](image, size)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def crop(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size`, then the centre square."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def squish(image: Image.Image, size: int) -> Image.Image:
    """Stretched (or squeezed) to the square."""
    return image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)


def pad(image: Image.Image, size: int) -> Image.Image:
    """Longer side to `size`, centred on a black square."""
    width, height = image.size
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    canvas = Image.new(image.mode, (size, size))
    canvas.paste(image, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def aspect_ratio(width: int, height: int) -> float:
    return max(width, height) / max(1, min(width, height))


def default_resize(sizes: Iterable[tuple[int, int]]) -> tuple[str, str]:
    """The resize mode for images of these (width, height)s, and why, in one sentence."""
    ratios = [aspect_ratio(w, h) for w, h in sizes if w and h]
    if not ratios:
        return "crop", "resize crop: no image sizes recorded"
    ratio = median(ratios)
    if ratio <= CROP_MAX_RATIO:
        return "crop", (f"resize crop: the images are near-square (median aspect ratio "
                        f"{ratio:.2f}), so a centre crop loses at most a thin border")
    if ratio < PAD_FROM_RATIO:
        return "squish", (f"resize squish: the images are {ratio:.2f}× as long as wide (median), "
                          "so a crop would cut off their ends; stretching keeps all of them")
    return "pad", (f"resize pad: the images are {ratio:.2f}× as long as wide (median); a crop "
                   "would lose over half and a squish distort over 2×, so they are letterboxed")


def resolve_resize(setting: str, sizes: Iterable[tuple[int, int]]) -> tuple[str, str]:
    """The mode a run uses and why: a mode as given, `auto` from the images' aspect ratios."""
    if setting in RESIZE_MODES:
        return setting, f"resize {setting}: set by hand"
    return default_resize(sizes)
