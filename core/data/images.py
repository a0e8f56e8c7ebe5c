"""Decode one uploaded file into a clean Pillow image: mode "L" or "RGB", upright, first frame.

Everything here works on bytes already in memory; nothing touches the disk. A file
that is not a usable image raises `ImageRejected` with a reason a person can read.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# File name endings we try to decode; anything else is dropped by name, unread.
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
    ".ppm", ".pgm", ".pbm", ".pnm",
})
# Pillow sniffs the content, not the name; restricting the decoders it may pick keeps
# exotic plugins (EPS runs Ghostscript) away from untrusted bytes.
ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM")
HIGH_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


class ImageRejected(Exception):
    """A file that cannot become a training image; `reason` says why, for the drop list."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode `data` fully (so truncation is caught) and return it upright in mode L or RGB."""
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's notes on odd-but-readable files are noise here
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # ...but this one refuses
        try:
            # No `with`: closing would also free the pixels of the image we return.
            image = Image.open(io.BytesIO(data), formats=_formats())
            check_pixels(image.size, max_pixels)
            image.load()  # decode every byte now: a truncated file fails here
            clean = to_l_or_rgb(upright(image))
            clean.info = {}  # EXIF (applied), ICC of the old mode...: none of it fits any more
            return clean
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(f"too many pixels for a safe decode ({exc})") from None
        except UnidentifiedImageError:
            raise ImageRejected("not an image Pillow can read (JPEG, PNG, BMP, GIF, WebP, "
                                "TIFF, PPM)") from None
        except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many types on bad input
            raise ImageRejected(f"corrupt or truncated image ({type(exc).__name__}: {exc})") \
                from None


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse from the header alone, before a pixel is decoded."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageRejected(
            f"image is {width}x{height} = {width * height:,} pixels, "
            f"over the limit of {max_pixels:,}"
        )


def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block leaves the image as it is."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - bad EXIF is no reason to lose the pixels
        return image


def to_l_or_rgb(image: Image.Image) -> Image.Image:
    """Convert any decoded mode to "L" (grayscale stays single-channel) or "RGB"."""
    mode = image.mode
    if mode in ("L", "RGB", "P") and "transparency" in image.info:
        flat = on_white(image.convert("RGBA"))  # a colour key or palette entry marks clear
        return flat.convert("L") if mode == "L" else flat
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode in HIGH_BIT_MODES:
        return rescale_to_l(image)
    if mode in ("LA", "La"):
        return on_white(image.convert("RGBA")).convert("L")
    if mode in ("RGBA", "RGBa", "PA"):
        return on_white(image.convert("RGBA"))
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, ...


def on_white(rgba: Image.Image) -> Image.Image:
    """Composite a transparent image over white (how a viewer would show it)."""
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def rescale_to_l(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float grayscale → 8-bit by the image's own range (never clipped at 255)."""
    pixels = np.nan_to_num(np.asarray(image, dtype=np.float64))
    low, high = float(pixels.min()), float(pixels.max())
    # A flat image has no range to stretch: keep its level where it fits in 0..255.
    pixels = (pixels - low) * (255.0 / (high - low)) if high > low else np.clip(pixels, 0, 255)
    return Image.fromarray(np.rint(pixels).astype(np.uint8))


def _formats() -> list[str]:
    Image.init()
    return [name for name in ALLOWED_FORMATS if name in Image.OPEN]
