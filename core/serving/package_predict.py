"""Classify images with this package's model.onnx: `python predict.py IMAGE... [--json]`.

Needs only onnxruntime, numpy and pillow (pip install onnxruntime numpy pillow). It prepares
each image as CNN Studio did when the model was trained: a JPEG decoded at reduced size
(DCT scaling) where the input is small, upright (EXIF), transparency on
white, grayscale or RGB, the shorter side resized to the input size (bilinear) and
centre-cropped, scaled to 0..1, normalised by model.json's mean and std. The probabilities
are softmax(logits / temperature); an image whose top probability is under model.json's
unknown threshold is marked unknown. `--json` prints what `python -m core predict --json`
prints: {"run_id", "predictions": [{"image", "top": [{"label", "prob"}], "unknown"}]}.

This file is copied into every package by CNN Studio (core/serving/package.py); it must not
import anything of CNN Studio's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM")
HIGH_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}


def decode(data: bytes, draft_to: int | None = None) -> Image.Image:
    """Bytes → an upright Pillow image in mode L or RGB; ValueError says what is wrong. With
    `draft_to` (the input size) a JPEG is decoded at the smallest DCT scale keeping both sides
    >= draft_to, as CNN Studio's training cache decoded it."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.init()
        image = Image.open(io.BytesIO(data), formats=[f for f in ALLOWED_FORMATS
                                                      if f in Image.OPEN])
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"image is {width}x{height} pixels, over {MAX_PIXELS:,}")
        if draft_to:
            image.draft(None, (draft_to, draft_to))  # JPEG only; other formats ignore it
        image.load()
        with contextlib.suppress(Exception):  # a broken EXIF block keeps the pixels as they are
            image = ImageOps.exif_transpose(image)
        return to_l_or_rgb(image)


def to_l_or_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("L", "RGB", "P") and "transparency" in image.info:
        flat = on_white(image.convert("RGBA"))
        return flat.convert("L") if mode == "L" else flat
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode in HIGH_BIT_MODES:
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float64))
        low, high = float(pixels.min()), float(pixels.max())
        pixels = (pixels - low) * (255.0 / (high - low)) if high > low else np.clip(pixels, 0, 255)
        return Image.fromarray(np.rint(pixels).astype(np.uint8))
    if mode in ("LA", "La"):
        return on_white(image.convert("RGBA")).convert("L")
    if mode in ("RGBA", "RGBa", "PA"):
        return on_white(image.convert("RGBA"))
    return image.convert("RGB")


def on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def fit(image: Image.Image, size: int, channels: int, mode: str = "crop") -> np.ndarray:
    """uint8 H×W×C at size×size: `crop` (shorter side to size, centre crop) or `squish`."""
    image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    if (width, height) == (size, size):
        pass
    elif mode == "squish":
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    elif mode == "crop":
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    else:
        raise ValueError(f"this predict.py does not know resize mode {mode!r}")
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def to_input(arrays: list[np.ndarray], card: dict) -> np.ndarray:
    """uint8 N×H×W×C → float32 N×C×H×W, scaled to 0..1 and normalised."""
    x = np.stack(arrays).astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255)
    mean = np.asarray(card["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(card["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict(paths: list[str], top_k: int = 3, folder: Path = HERE) -> dict:
    import onnxruntime

    card = json.loads((folder / "model.json").read_text())
    session = onnxruntime.InferenceSession(str(folder / card.get("file", "model.onnx")),
                                           providers=["CPUExecutionProvider"])
    size, channels = card["image_size"], card["in_chans"]
    arrays = []
    for path in paths:
        try:
            arrays.append(fit(decode(Path(path).read_bytes(), size), size, channels,
                              card.get("resize_mode") or "crop"))
        except (OSError, ValueError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as error:
            raise SystemExit(f"error: cannot classify {path}: {error}") from None
    logits = session.run(["logits"], {"input": to_input(arrays, card)})[0]
    probs = softmax(logits, float(card.get("temperature") or 1.0))
    threshold = card.get("unknown_threshold")
    classes = card["classes"]
    predictions = []
    for path, row in zip(paths, probs, strict=True):
        order = np.argsort(-row, kind="stable")[:min(top_k, len(classes))]
        top = [{"label": classes[i], "prob": float(row[i])} for i in order]
        unknown = threshold is not None and top[0]["prob"] < float(threshold)
        predictions.append({"image": path, "top": top, "unknown": bool(unknown)})
    return {"run_id": card.get("run_id"), "predictions": predictions}


def table(result: dict) -> str:
    lines = []
    for p in result["predictions"]:
        mark = "  (unknown: unlike the training images)" if p["unknown"] else ""
        lines.append(f"{p['image']}: " + ", ".join(f"{t['label']} {t['prob']:.3f}"
                                                   for t in p["top"]) + mark)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    result = predict(args.images, args.top_k)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
