"""Ship a trained run: ONNX, TorchScript or safetensors, each with a model card beside it.

Every export is checked before it is called done: up to 64 of the run's own validation
images go through the PyTorch model and through the exported file (ONNX Runtime,
torch.jit.load, or a fresh model loading the safetensors), and the largest logit
difference and the top-1 agreement are recorded on the run and in the card.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from core.data.cache import cache_path, decode_files
from core.data.dataset import DatasetError, load_dataset
from core.data.loader import to_model_input
from core.durable import fsync_file, replace_durably, write_json_atomic
from core.serving.infer import LoadedModel, load_model
from core.store import Store
from core.training.checkpoint import load_weights, save_tensors_atomic
from models import create_model

log = logging.getLogger(__name__)
FORMATS = ("onnx", "torchscript", "safetensors")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors",
            "package": ".zip"}  # the package: core.serving.package
OPSET = 18
PARITY_IMAGES = 64
PARITY_TOLERANCE = 1e-3  # max abs difference of logits between PyTorch and the export


def card_file(path: Path) -> Path:
    """The model card beside an exported file: model.onnx → model.onnx.card.json. The whole
    name, so the ONNX, TorchScript, safetensors and package exports of one run each keep their
    own card (`model.card.json` was one file they overwrote in turn)."""
    return path.with_name(path.name + ".card.json")


def export_run(run_ref: str, fmt: str, out: str | Path, store: Store | None = None) -> dict:
    """Export run `run_ref` to `out` in `fmt`, check parity, write `<out name>.card.json`.

    Returns {path, format, card, parity: {max_abs_diff, top1_agreement, tolerance, passed,
    images, inputs}} and records the same on the run's summary under "exports"."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    store = store or Store()
    loaded = load_model(run_ref, store)
    run = store.get_run(loaded.run_id)
    path = output_path(Path(out), fmt, run["name"])
    example = example_input(loaded, batch=2)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{SUFFIXES[fmt]}")
    try:
        details = write_export(loaded, fmt, example, tmp, run["name"])
        inputs, source = parity_inputs(loaded)
        parity = check_parity(loaded.model, RUNNERS[fmt](loaded, tmp), inputs) | {"inputs": source}
        fsync_file(tmp)
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    card_path = card_file(path)
    write_json_atomic(card_path, model_card(loaded, run, fmt, path, parity, details))
    result = {"run_id": loaded.run_id, "path": str(path), "format": fmt, "card": str(card_path),
              "parity": parity, **details}
    record_export(store, loaded.run_id, result)
    return result


def output_path(out: Path, fmt: str, run_name: str) -> Path:
    """A folder gets `<run name><suffix>` inside it; a bare name gets the format's suffix."""
    out = out.expanduser()
    if out.is_dir():
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", run_name).strip("-.") or "model"
        out = out / f"{stem}{SUFFIXES[fmt]}"
    elif not out.suffix:
        out = out.with_suffix(SUFFIXES[fmt])
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.resolve()


def example_input(loaded: LoadedModel, batch: int) -> torch.Tensor:
    size, channels = loaded.card["image_size"], loaded.card["in_chans"]
    return torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------- writers

def write_export(loaded: LoadedModel, fmt: str, example: torch.Tensor, path: Path,
                 run_name: str) -> dict:
    try:
        return WRITERS[fmt](loaded, example, path)
    except Exception as error:  # a sentence for the person, not the exporter's traceback
        other = "torchscript" if fmt == "onnx" else "onnx"
        raise ValueError(f"Exporting run {run_name} as {fmt} failed ({error.__class__.__name__}: "
                         f"{str(error)[:300]}). Try --format {other}.") from error


def write_onnx(loaded: LoadedModel, example: torch.Tensor, path: Path) -> dict:
    """ONNX with a dynamic batch axis: the torch.export-based exporter, or the TorchScript-based
    one when that fails (some timm blocks do not trace through torch.export)."""
    names = {"input_names": ["input"], "output_names": ["logits"], "opset_version": OPSET}
    # The exporter reports its progress on stdout, which `--json` keeps for one JSON object.
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(loaded.model, (example,), str(path), dynamo=True, verbose=False,
                              dynamic_shapes=({0: batch},), external_data=False, **names)
            return {"exporter": "torch.export", "opset": OPSET}
        except Exception as error:  # noqa: BLE001 - fall back to the older exporter below
            first_error = f"{error.__class__.__name__}: {error}"
            log.warning("torch.export-based ONNX export failed, trying the TorchScript-based "
                        "exporter: %s", first_error[:500])
        path.unlink(missing_ok=True)
        axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(loaded.model, (example,), str(path), dynamo=False,
                          dynamic_axes=axes, **names)
    return {"exporter": "torchscript", "opset": OPSET, "dynamo_error": first_error[:500]}


def write_torchscript(loaded: LoadedModel, example: torch.Tensor, path: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation notes; parity is the real check
        traced = torch.jit.trace(loaded.model, example, check_trace=False)
        torch.jit.save(traced, str(path))
    return {"exporter": "torch.jit.trace"}


def write_safetensors(loaded: LoadedModel, example: torch.Tensor, path: Path) -> dict:
    """The weights as core.training.checkpoint writes them (`model.*` keys), which model_import
    reads."""
    weights = {f"model.{k}": v.detach().contiguous() for k, v in
               loaded.model.state_dict().items()}
    save_tensors_atomic(path, weights)
    return {"exporter": "safetensors"}


WRITERS: dict[str, Callable[[LoadedModel, torch.Tensor, Path], dict]] = {
    "onnx": write_onnx, "torchscript": write_torchscript, "safetensors": write_safetensors}


# ------------------------------------------------------------------------------- runners

Runner = Callable[[np.ndarray], np.ndarray]  # float32 N×C×H×W → logits N×K


def onnx_runner(loaded: LoadedModel, path: Path) -> Runner:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(["logits"], {"input": x})[0]


def torchscript_runner(loaded: LoadedModel, path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit is deprecated"
        module = torch.jit.load(str(path), map_location="cpu").eval()
    return torch_runner(module)


def safetensors_runner(loaded: LoadedModel, path: Path) -> Runner:

    card = loaded.card
    model = create_model(card.get("spec") or card["model"], in_chans=card["in_chans"],
                         num_classes=len(card["classes"]), image_size=card["image_size"])
    model.load_state_dict(load_weights(path))
    return torch_runner(model.eval())


def torch_runner(module: torch.nn.Module) -> Runner:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).float().numpy()
    return run


RUNNERS: dict[str, Callable[[LoadedModel, Path], Runner]] = {
    "onnx": onnx_runner, "torchscript": torchscript_runner, "safetensors": safetensors_runner}


# -------------------------------------------------------------------------------- parity

def parity_inputs(loaded: LoadedModel, limit: int = PARITY_IMAGES) -> tuple[np.ndarray, str]:
    """Up to `limit` validation images of the run's dataset, normalised as LoadedModel.to_batch
    does; random images (and "random") when the dataset is gone or has changed."""
    card = loaded.card
    images = validation_images(card, limit)
    source = "validation"
    if images is None:
        generator = np.random.default_rng(0)
        shape = (min(limit, 16), card["image_size"], card["image_size"], card["in_chans"])
        images, source = generator.integers(0, 256, shape, dtype=np.uint8), "random"
    x = to_model_input(torch.from_numpy(np.ascontiguousarray(images)),
                       torch.tensor(card["mean"]), torch.tensor(card["std"]))
    return np.ascontiguousarray(x.contiguous().numpy(), dtype=np.float32), source


def validation_images(card: dict, limit: int) -> np.ndarray | None:
    """uint8 N×H×W×C from the cache when it exists, else decoded from the dataset's files."""
    try:
        dataset = load_dataset(card.get("data") or "")
    except (DatasetError, ValueError):
        return None
    if (card.get("content_hash") and dataset.content_hash != card["content_hash"]) \
            or dataset.channels != card["in_chans"]:
        return None
    index = next((ix for split in ("val", "test", "train")
                  if (ix := dataset.indices(split))), [])[:limit]
    if not index:
        return None
    size = card["image_size"]
    try:
        path = cache_path(dataset, size, card.get("resize") or "crop")
        if path.exists():
            return np.asarray(np.load(path, mmap_mode="r")[index])
        files = [str(dataset.folder / dataset.items[i].file) for i in index]
        return decode_files(files, size, dataset.channels, card.get("resize") or "crop")
    except (OSError, ValueError):
        return None


def check_parity(model: torch.nn.Module, runner: Runner, x: np.ndarray,
                 tolerance: float | None = None) -> dict:
    tolerance = PARITY_TOLERANCE if tolerance is None else tolerance
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).float().numpy()
    got = np.asarray(runner(x), dtype=np.float32)
    if got.shape != expected.shape:
        return {"max_abs_diff": None, "top1_agreement": 0.0, "tolerance": tolerance,
                "passed": False, "images": len(x),
                "error": f"output shape {got.shape} differs from PyTorch's {expected.shape}"}
    diff = float(np.abs(got - expected).max())
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    return {"max_abs_diff": diff, "top1_agreement": agreement, "tolerance": tolerance,
            "passed": bool(diff <= tolerance), "images": len(x)}


# ---------------------------------------------------------------------------------- card

def model_card(loaded: LoadedModel, run: dict, fmt: str, path: Path, parity: dict,
               details: dict) -> dict:
    """Everything a consumer needs to feed the file correctly; also a valid model.json for
    core.serving.model_import (model, spec, classes, in_chans, image_size, mean, std)."""
    card = loaded.card
    size, channels, classes = card["image_size"], card["in_chans"], card["classes"]
    return {
        "format": fmt, "file": path.name, "run_id": run["run_id"], "run_name": run["name"],
        **{key: card.get(key) for key in ("model", "spec", "classes", "in_chans", "image_size",
                                          "mean", "std", "data", "content_hash")},
        "resize": card.get("resize") or "crop",  # core.data.transforms.fit_image's mode
        "input": {"name": "input", "shape": ["batch", channels, size, size],
                  "dtype": "float32", "layout": "NCHW (channels_first)"},
        "output": {"name": "logits", "shape": ["batch", len(classes)],
                   "meaning": "unnormalised class scores in `classes` order; "
                              "softmax(logits / temperature) for calibrated probabilities"},
        "temperature": loaded.temperature, "unknown": card.get("unknown"),
        "preprocessing": {
            "color": "grayscale (L)" if channels == 1 else "RGB",
            "resize": resize_description(card.get("resize") or "crop", size),
            "pixel_scale": "uint8 / 255, so 0..1", "normalise": "(x - mean) / std per channel",
            "mean": card["mean"], "std": card["std"], "channels_first": True},
        "metrics": {"best_val_acc": run.get("best_val_acc"), "test_acc": run.get("test_acc"),
                    "best_epoch": (run.get("summary") or {}).get("best_epoch")},
        "training_config": run["config"],
        "parity": parity,
        "torch_version": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **{key: value for key, value in details.items() if key != "dynamo_error"},
    }


def resize_description(mode: str, size: int) -> str:
    """How core.data.transforms.fit_image makes a square of `size` in `mode`, for a consumer."""
    return {"crop": f"shorter side to {size} px (bilinear), then centre crop {size}x{size}",
            "squish": f"stretch to {size}x{size} (bilinear)",
            "pad": f"longer side to {size} px (bilinear), centred on a black {size}x{size} "
                   "square"}[mode]


def record_export(store: Store, run_id: str, result: dict) -> None:
    run = store.get_run(run_id)  # read again just before writing: training may have updated it
    summary = run["summary"] or {}
    entry = {key: result[key] for key in ("format", "card", "parity")} | {"at": time.time()}
    exports = dict(summary.get("exports") or {}) | {result["path"]: entry}
    store.update_run(run_id, summary=summary | {"exports": exports})
