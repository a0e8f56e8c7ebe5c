"""Decode one uploaded file into a clean Pillow image: mode "L" or "RGB", upright, first frame.

Everything here works on bytes already in memory; nothing touches the disk. A file
that is not a usable image raises `ImageRejected` with a reason a person can read.

`decode_image(data, max_pixels, draft_to=size)` is the one decode the cache (training) and
inference share: a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8 of each side)
that keeps both sides at least `size`, which is most of the decode's work saved when a
photo is resized to a small model input. `decode_upload` is the importer's full decode; it
also says whether the upload's own bytes can be stored as they are (`Decoded.keep`).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

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
# Formats whose files are stored as uploaded when they decode to L or RGB as they are: their
# stored bytes decode to the very pixels checked here. Others (BMP, PPM, TIFF, GIF) become PNG.
KEPT_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
ORIENTATION = 0x0112  # the EXIF tag; 1 (or none) is upright


class ImageRejected(Exception):
    """A file that cannot become a training image; `reason` says why, for the drop list."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Decoded:
    image: Image.Image  # mode L or RGB, upright, first frame
    keep: bool  # the upload's own bytes decode to exactly `image`: store them as they are
    extension: str  # the stored file's extension when kept (".jpg", ".png", ".webp")
    size: tuple[int, int]  # (width, height) upright, at full size (`image` may be drafted)


def decode_image(data: bytes, max_pixels: int, draft_to: int | None = None) -> Image.Image:
    """Decode `data` (every byte, so truncation is caught) and return it upright in mode L or
    RGB; with `draft_to`, a JPEG at the smallest DCT scale whose sides stay >= draft_to."""
    return decode_upload(data, max_pixels, draft_to).image


def decode_upload(data: bytes, max_pixels: int, draft_to: int | None = None, *,
                  check_only: bool = False) -> Decoded:
    """The checked decode, and whether the bytes can be kept (see `needs_no_conversion`).
    `check_only` (the importer, which keeps such bytes as they are and needs no pixels of
    them): a JPEG to keep is decoded at 1/8 scale, which still decodes every byte of its
    entropy-coded data, so truncation and corruption fail as in a full decode; only the
    inverse DCT runs smaller. `Decoded.size` is always the upright full size."""
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's notes on odd-but-readable files are noise here
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # ...but this one refuses
        try:
            # No `with`: closing would also free the pixels of the image we return.
            image = Image.open(io.BytesIO(data), formats=_formats())
            check_pixels(image.size, max_pixels)
            full_size, keep = image.size, needs_no_conversion(image)
            if check_only and keep:
                draft_to = 1  # the smallest scale: 1/8 of each side
            if draft_to:
                image.draft(None, (draft_to, draft_to))  # JPEG only; others ignore it
            image.load()  # decode every byte now: a truncated file fails here
            clean = image if keep else to_l_or_rgb(upright(image))  # kept: nothing to convert
            clean.info = {}  # EXIF (applied), ICC of the old mode...: none of it fits any more
            return Decoded(clean, keep, KEPT_FORMATS.get(image.format or "", ".png"),
                           full_size if keep else clean.size)
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


def needs_no_conversion(image: Image.Image) -> bool:
    """True when `image` (opened: its header tells) is already what the importer keeps: a
    JPEG, PNG or WebP in mode L or RGB, one frame, no transparency, no EXIF rotation. CMYK,
    16-bit, palettes, alpha, animations, rotated photos and other formats are converted."""
    if image.format not in KEPT_FORMATS or image.mode not in ("L", "RGB"):
        return False
    if "transparency" in image.info or getattr(image, "n_frames", 1) != 1:
        return False
    try:
        orientation = image.getexif().get(ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is converted, as upright() copes
        return False
    return orientation in (1, None)


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


def png_bytes(image: Image.Image) -> bytes:
    """A cleaned image as the PNG the dataset stores (fast compression: written once, read
    once per cache size)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _formats() -> list[str]:
    Image.init()
    return [name for name in ALLOWED_FORMATS if name in Image.OPEN]
