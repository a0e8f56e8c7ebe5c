"""Classify images with this package's model.onnx: `python predict.py IMAGE... [--json]`.

Needs only onnxruntime, numpy and pillow (pip install onnxruntime numpy pillow). It prepares
each image as CNN Studio did when the model was trained: a JPEG decoded at reduced size
(DCT scaling) where the input is small, upright (EXIF), transparency on
white, grayscale or RGB, the shorter side resized to the input size (bilinear) and
centre-cropped, scaled to 0..1, normalised by model.json's mean and std. The probabilities
are softmax(logits / temperature); an image whose score under model.json's unknown rule
(msp, energy, or kNN against features_bank.npy) is under its threshold is marked unknown.
`--json` prints what `python -m core predict --json` prints: {"run_id", "temperature",
"detector", "predictions": [{"image", "top": [{"label", "prob"}], "unknown", "score"}]}.

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
    """uint8 H×W×C at size×size: `crop` (shorter side to size, centre crop), `squish` or `pad`
    (longer side to size, centred on black): core.data.transforms.fit_image, written again so
    the package needs nothing of the project (tests/unit/test_resize.py pins them equal)."""
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
    elif mode == "pad":
        scale = size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
        canvas = Image.new(image.mode, (size, size))
        canvas.paste(image, ((size - new_w) // 2, (size - new_h) // 2))
        image = canvas
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


def unknown_scores(rule: dict, logits: np.ndarray, features: np.ndarray | None,
                   temperature: float, folder: Path) -> np.ndarray:
    """Higher = more like the training images: msp (top probability), energy (logsumexp of
    the logits) or knn (minus the distance to the k-th nearest training image's features)."""
    if rule["method"] == "msp":
        return softmax(logits, temperature).max(axis=1)
    z = logits.astype(np.float64)
    if rule["method"] == "energy":
        top = z.max(axis=1, keepdims=True)
        return top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    bank = np.load(folder / rule["bank"]).astype(np.float32)
    queries = features.astype(np.float32)
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    k = max(1, min(int(rule.get("knn_k") or 5), len(bank)))
    kth = -np.partition(-(queries @ bank.T), k - 1, axis=1)[:, k - 1]
    return -np.sqrt(np.maximum(2 - 2 * kth, 0))


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
    rule = card.get("unknown")
    names = ["logits", "features"] if rule and rule["method"] == "knn" else ["logits"]
    outputs = session.run(names, {"input": to_input(arrays, card)})
    temperature = float(card.get("temperature") or 1.0)
    probs = softmax(outputs[0], temperature)
    scores = None if not rule else unknown_scores(rule, outputs[0], outputs[-1], temperature,
                                                  folder)
    classes = card["classes"]
    predictions = []
    for index, (path, row) in enumerate(zip(paths, probs, strict=True)):
        order = np.argsort(-row)[:min(top_k, len(classes))]
        score = None if scores is None else float(scores[index])
        predictions.append({"image": path,
                            "top": [{"label": classes[i], "prob": float(row[i])} for i in order],
                            "unknown": bool(score is not None and score < rule["threshold"]),
                            "score": score})
    detector = {"method": rule["method"], "threshold": rule["threshold"]} if rule else None
    return {"run_id": card.get("run_id"), "temperature": temperature, "detector": detector,
            "predictions": predictions}


def table(result: dict) -> str:
    lines = []
    for p in result["predictions"]:
        answer = ", ".join(f"{t['label']} {t['prob']:.3f}" for t in p["top"])
        if p["unknown"]:
            answer = f"none of the classes I know (closest: {answer})"
        lines.append(f"{p['image']}: {answer}")
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
