"""A model package: one zip that runs anywhere with onnxruntime, numpy and pillow.

    model.onnx   the model (FP32, or INT8/FP16 when asked for and good enough)
    model.json   labels, input size, channels, mean/std, resize mode, temperature and unknown
                 threshold (when the run has them), test metrics, data hash and config
    predict.py   core/serving/package_predict.py: the project's preprocessing, a table or
                 `--json` (the JSON of `python -m core predict --json`)
    README.md    the figures and a three-line usage example

The FP32 ONNX file is checked against PyTorch first (export.check_parity); a package whose
model does not match is not written. A smaller variant is measured again on the test split
(core.serving.quantize) and refused when it loses more than one point.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from core.durable import fsync_file, replace_durably, write_json_atomic
from core.serving import quantize
from core.serving.export import check_parity as parity_of
from core.serving.export import (
    example_input,
    onnx_runner,
    output_path,
    parity_inputs,
    record_export,
    write_export,
)
from core.serving.infer import LoadedModel, load_model
from core.store import Store

PREDICT_SCRIPT = Path(__file__).with_name("package_predict.py")
CHANGED_KEPT = 200  # changed answers listed in model.json (the count is always exact)


def build_package(run_ref: str, out: str | Path, quantization: str | None = None,
                  store: Store | None = None) -> dict:
    """Write the package zip for run `run_ref` to `out` (a .zip, or a folder for `<run>.zip`).

    Returns {run_id, path, card, format: "package", precision, parity, test, quantization}:
    `precision` is what model.onnx holds, "fp32" when the asked-for variant was refused."""
    store = store or Store()
    loaded = load_model(run_ref, store)
    run = store.get_run(loaded.run_id)
    path = output_path(Path(out), "package", run["name"])
    with tempfile.TemporaryDirectory(prefix="cnn-package-") as scratch:
        fp32 = Path(scratch) / "model-fp32.onnx"
        details = write_export(loaded, "onnx", example_input(loaded, batch=2), fp32, run["name"])
        inputs, source = parity_inputs(loaded)
        parity = parity_of(loaded.model, onnx_runner(loaded, fp32), inputs) | {"inputs": source}
        if not parity["passed"]:
            raise ValueError(f"The ONNX model of run {run['name']} differs from PyTorch's by "
                             f"{parity['max_abs_diff']} (tolerance {parity['tolerance']:g}); "
                             "no package was written. Try `--format torchscript`.")
        report, model_file = None, fp32
        if quantization:
            variant = Path(scratch) / f"model-{quantization}.onnx"
            report = quantize.make_variant(quantization, loaded.card, fp32, variant)
            model_file = variant if report["accepted"] else fp32
        precision = quantization if report and report["accepted"] else "fp32"
        test = report_test(report, precision) or quantize.onnx_accuracy(loaded.card, fp32)
        card = package_card(loaded, run, precision, parity, details, test, report)
        write_zip(path, model_file, card)
    card_path = path.with_suffix(".card.json")
    write_json_atomic(card_path, card)
    result = {"run_id": loaded.run_id, "path": str(path), "card": str(card_path),
              "format": "package", "precision": precision, "parity": parity, "test": test,
              "quantization": report}
    record_export(store, loaded.run_id, result)
    return result


def report_test(report: dict | None, precision: str) -> dict | None:
    """The test figures of the model the package holds, from a variant's report."""
    if not report or report.get("split") is None:
        return None
    side = report[precision]
    return {"accuracy": side["accuracy"], "split": report["split"], "images": report["images"],
            "size_bytes": side["size_bytes"], "p50_ms": side["p50_ms"],
            "p90_ms": side["p90_ms"]}


def calibration(card: dict, run: dict) -> dict:
    """Temperature and unknown threshold when the run has them (issue 13's after-training
    step), from the run's model.json or its summary; None where absent."""
    summary = run.get("summary") or {}
    found = {}
    for key in ("temperature", "unknown_threshold"):
        value = card.get(key, summary.get(key))
        found[key] = float(value) if isinstance(value, (int, float)) else None
    return found


def package_card(loaded: LoadedModel, run: dict, precision: str, parity: dict, details: dict,
                 test: dict | None, report: dict | None) -> dict:
    """model.json: what predict.py reads, and what a person needs to trust the file."""
    import onnxruntime

    card = loaded.card
    size, channels, classes = card["image_size"], card["in_chans"], card["classes"]
    resize_mode = card.get("resize_mode") or (run.get("config") or {}).get("resize") or "crop"
    if report:
        report = report | {"changed": report["changed"][:CHANGED_KEPT],
                           "changed_count": len(report["changed"])}
    return {
        "format": "onnx", "file": "model.onnx", "precision": precision,
        "run_id": run["run_id"], "run_name": run["name"],
        **{key: card.get(key) for key in ("model", "spec", "classes", "in_chans", "image_size",
                                          "mean", "std")},
        "resize_mode": resize_mode, **calibration(card, run),
        "input": {"name": "input", "shape": ["batch", channels, size, size], "dtype": "float32",
                  "layout": "NCHW (channels_first)"},
        "output": {"name": "logits", "shape": ["batch", len(classes)],
                   "meaning": "class scores in `classes` order: softmax(logits / temperature)"},
        "preprocessing": {
            "color": "grayscale (L)" if channels == 1 else "RGB",
            "resize": f"{resize_mode}: shorter side to {size} px (bilinear), then centre crop"
                      if resize_mode == "crop" else f"{resize_mode} to {size}x{size} px",
            "pixel_scale": "uint8 / 255, so 0..1", "normalise": "(x - mean) / std per channel"},
        "metrics": {"best_val_acc": run.get("best_val_acc"), "test_acc": run.get("test_acc"),
                    "best_epoch": (run.get("summary") or {}).get("best_epoch"),
                    "package_test": test},
        "quantization": report,
        "data": {"name": card.get("data"), "content_hash": card.get("content_hash"),
                 "splits": card.get("splits"), "split_seed": card.get("split_seed")},
        "training_config": run["config"],
        "parity": parity, "opset": details.get("opset"), "exporter": details.get("exporter"),
        "torch_version": torch.__version__, "onnxruntime_version": onnxruntime.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_zip(path: Path, model_file: Path, card: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(model_file, "model.onnx")
            archive.writestr("model.json", json.dumps(card, indent=2))
            archive.write(PREDICT_SCRIPT, "predict.py")
            archive.writestr("README.md", readme(card, path.stem))
        fsync_file(tmp)
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def readme(card: dict, name: str) -> str:
    test = card["metrics"]["package_test"]
    figures = [f"- Model: {card['model']} ({card['precision'].upper()} ONNX, opset "
               f"{card['opset']}), input {card['in_chans']}×{card['image_size']}×"
               f"{card['image_size']}, {len(card['classes'])} classes: "
               + ", ".join(card["classes"][:20]) + (" …" if len(card["classes"]) > 20 else "")]
    if test:
        figures.append(f"- Accuracy of this file on the {test['images']} {test['split']} images "
                       f"of dataset {card['data']['name']}: {test['accuracy']:.2%}; one image "
                       f"takes {test['p50_ms']:.2f} ms (p50, ONNX Runtime, CPU, where it was "
                       "exported).")
    else:
        figures.append("- Accuracy of this file: not measured (the run's dataset was gone).")
    if card["quantization"]:
        figures.append(f"- {card['quantization']['verdict']}")
    if card.get("temperature"):
        figures.append("- Probabilities are calibrated: softmax(logits / "
                       f"{card['temperature']:.3f}).")
    if card.get("unknown_threshold") is not None:
        figures.append(f"- An image whose top probability is under "
                       f"{card['unknown_threshold']:.3f} is reported as unknown.")
    return "\n".join([
        f"# {card['run_name']}: an image classifier from CNN Studio", "",
        *figures, "",
        "## Use it", "", "```",
        "pip install onnxruntime numpy pillow",
        f"unzip {name}.zip -d {name} && cd {name}",
        "python predict.py photo.jpg            # a table; --json for JSON",
        "```", "",
        "`model.json` says how the images are prepared (the same steps as `predict.py`), the "
        "run's metrics, the data hash and the training configuration.", ""])
