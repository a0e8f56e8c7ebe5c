"""Smaller ONNX models with their accuracy measured again: INT8 and FP16.

INT8 is ONNX Runtime's static quantization (QDQ format, per-channel int8 weights, uint8
activations), calibrated on CALIBRATION_IMAGES training images through a
CalibrationDataReader. We chose it over PyTorch's PT2E flow because the file it writes is
the one that ships (model.onnx, run by ONNX Runtime on any CPU), while PT2E's quantized
graph runs on backend-specific kernels (x86 vs ARM) and still needs an export afterwards.
FP16 is onnxruntime.transformers.float16 (the same converter as onnxconverter-common, already
installed with onnxruntime), with float32 inputs and outputs kept.

Every variant is run on the test split beside the FP32 ONNX model: accuracy, file size,
single-image latency, and the test images whose answer changed. A variant that loses more
than MAX_LOSS_POINTS points of accuracy is refused: the package keeps the FP32 model.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from core.data.cache import cache_path, decode_files
from core.data.dataset import DatasetError, load_dataset

CALIBRATION_IMAGES = 300
MAX_LOSS_POINTS = 1.0  # accuracy points a smaller model may lose and still be called good
LATENCY_REPEATS = 50
VARIANTS = ("int8", "fp16")


def split_images(card: dict, split: str, limit: int | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """uint8 N×H×W×C, labels and dataset-relative files of `split` of the run's dataset (the
    cache when it exists, else the files decoded); None when the dataset is gone or changed."""
    try:
        dataset = load_dataset(card.get("data") or "")
    except (DatasetError, ValueError):
        return None
    if (card.get("content_hash") and dataset.content_hash != card["content_hash"]) \
            or dataset.channels != card["in_chans"]:
        return None
    index = dataset.indices(split)[:limit]
    if not index:
        return None
    labels = np.array([dataset.items[i].label for i in index], dtype=np.int64)
    files = [dataset.items[i].file for i in index]
    try:
        path = cache_path(dataset, card["image_size"], card.get("resize") or "crop")
        if path.exists():
            return np.asarray(np.load(path, mmap_mode="r")[index]), labels, files
        decoded = decode_files([str(dataset.folder / f) for f in files], card["image_size"],
                               dataset.channels, card.get("resize") or "crop")
        return decoded, labels, files
    except (OSError, ValueError):
        return None


def model_input(images: np.ndarray, card: dict) -> np.ndarray:
    """uint8 N×H×W×C → normalised float32 N×C×H×W, as core.data.loader.to_model_input."""
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255)
    mean = np.asarray(card["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(card["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session; `threads` intra-op threads (ORT's default: one per core)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # ORT's notes on unused initialisers are noise here
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def predictions(path: Path, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The top class of every image of `x` under the ONNX model at `path`."""
    runner = session(path)
    tops = [runner.run(["logits"], {"input": x[i:i + batch]})[0].argmax(1)
            for i in range(0, len(x), batch)]
    return np.concatenate(tops) if tops else np.zeros(0, dtype=np.int64)


def latency_ms(path: Path, x: np.ndarray, repeats: int = LATENCY_REPEATS) -> dict:
    """p50/p90 milliseconds of one image through the ONNX model (after 5 untimed calls)."""
    runner, one = session(path), x[:1]
    for _ in range(5):
        runner.run(["logits"], {"input": one})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.run(["logits"], {"input": one})
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90))}


def onnx_accuracy(card: dict, path: Path) -> dict | None:
    """{accuracy, split, images, size_bytes, p50_ms, p90_ms} of the ONNX model on the test
    split (val when there is none); None when the dataset is gone."""
    test, split = split_images(card, "test"), "test"
    if test is None:
        test, split = split_images(card, "val"), "val"
    if test is None:
        return None
    images, labels, _ = test
    x = model_input(images, card)
    return {"accuracy": float((predictions(path, x) == labels).mean()), "split": split,
            "images": len(labels), "size_bytes": os.path.getsize(path)} | latency_ms(path, x)


# ------------------------------------------------------------------------------ writers

class Calibration:
    """onnxruntime.quantization.CalibrationDataReader over a float32 N×C×H×W array."""

    def __init__(self, x: np.ndarray, batch: int = 32) -> None:
        self.batches = iter([x[i:i + batch] for i in range(0, len(x), batch)])

    def get_next(self) -> dict | None:
        batch = next(self.batches, None)
        return None if batch is None else {"input": batch}

    def rewind(self) -> None:  # quantize_static reads once; rewinding is not needed
        pass


def write_int8(fp32: Path, out: Path, calibration: np.ndarray) -> None:
    """Static QDQ quantization calibrated on `calibration` (normalised training images)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    CalibrationDataReader.register(Calibration)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        try:  # shape inference and graph fusion first, as ONNX Runtime recommends
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - some graphs do not pre-process; quantize as is
            prepared = fp32
        quantize_static(str(prepared), str(out), Calibration(calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def write_fp16(fp32: Path, out: Path) -> None:
    """Weights and activations in float16, float32 at the input and output."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    onnx.save(model, str(out))


# ------------------------------------------------------------------------------- report

def make_variant(kind: str, card: dict, fp32: Path, out: Path) -> dict:
    """Write the `kind` variant of `fp32` to `out` and measure both on the test split.

    Returns {kind, accepted, verdict, split, images, fp32: {accuracy, size_bytes, p50_ms,
    p90_ms}, <kind>: {...}, loss_points, changed: [{file, label, fp32, <kind>}]};
    `accepted` is False (and `out` removed) when the variant loses more than
    MAX_LOSS_POINTS points, or when there is no dataset to measure it on."""
    if kind not in VARIANTS:
        raise ValueError(f"Unknown quantization {kind!r}; use one of {', '.join(VARIANTS)}.")
    test = split_images(card, "test")
    split = "test"
    if test is None:
        test, split = split_images(card, "val"), "val"
    train = split_images(card, "train", CALIBRATION_IMAGES) if kind == "int8" else None
    if test is None or (kind == "int8" and train is None):
        return refused(kind, f"{kind.upper()} was not made: the run's dataset "
                       f"{card.get('data')!r} is gone or has changed, so its accuracy could "
                       "not be measured again. The package holds the FP32 model.")
    if kind == "int8":
        write_int8(fp32, out, model_input(train[0], card))
    else:
        write_fp16(fp32, out)
    return measure(kind, card, fp32, out, test, split)


def measure(kind: str, card: dict, fp32: Path, out: Path,
            test: tuple[np.ndarray, np.ndarray, list[str]], split: str) -> dict:
    images, labels, files = test
    x = model_input(images, card)
    classes = card["classes"]
    sides = {}
    tops = {}
    for name, path in (("fp32", fp32), (kind, out)):
        tops[name] = predictions(path, x)
        sides[name] = {"accuracy": float((tops[name] == labels).mean()),
                       "size_bytes": os.path.getsize(path)} | latency_ms(path, x)
    changed = [{"file": files[i], "label": classes[labels[i]],
                "fp32": classes[tops["fp32"][i]], kind: classes[tops[kind][i]]}
               for i in np.flatnonzero(tops["fp32"] != tops[kind])]
    loss = round((sides["fp32"]["accuracy"] - sides[kind]["accuracy"]) * 100, 4)
    accepted = loss <= MAX_LOSS_POINTS
    name = kind.upper()
    verdict = (f"{name} test accuracy {sides[kind]['accuracy']:.2%} against FP32 "
               f"{sides['fp32']['accuracy']:.2%} on {len(labels)} {split} images "
               f"(lost {loss:.2f} points; {len(changed)} answers changed); file "
               f"{sides[kind]['size_bytes'] / 1e6:.2f} MB against "
               f"{sides['fp32']['size_bytes'] / 1e6:.2f} MB.")
    if not accepted:
        out.unlink(missing_ok=True)
        verdict += (f" {name} loses more than {MAX_LOSS_POINTS:g} point, so it is not good "
                    "enough: the package holds the FP32 model.")
    return {"kind": kind, "accepted": accepted, "verdict": verdict, "split": split,
            "images": len(labels), "data": card.get("data"), "loss_points": loss,
            "max_loss_points": MAX_LOSS_POINTS, "changed": changed, **sides}


def refused(kind: str, verdict: str) -> dict:
    return {"kind": kind, "accepted": False, "verdict": verdict, "split": None, "images": 0,
            "loss_points": None, "max_loss_points": MAX_LOSS_POINTS, "changed": []}
