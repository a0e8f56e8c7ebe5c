"""A model package: one zip that runs anywhere with onnxruntime, numpy and pillow.

    model.onnx   the model (FP32, or INT8/FP16 when asked for and good enough)
    model.json   labels, input size, channels, mean/std, resize mode, temperature and the
                 unknown rule (when the run has them), test metrics, data hash and config
    features_bank.npy  when the run's unknown rule is kNN: the training features it compares
    predict.py   core/serving/package_predict.py: the project's preprocessing, a table or
                 `--json` (the JSON of `python -m core predict --json`)
    README.md    the figures and a three-line usage example

The FP32 ONNX file is checked against PyTorch first (export.check_parity); a package whose
model does not match is not written. A smaller variant is measured again on the test split
(core.serving.quantize) and refused when it loses more than one point.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from core.durable import fsync_file, replace_durably, write_json_atomic
from core.serving import quantize
from core.serving.export import (
    card_file,
    example_input,
    onnx_runner,
    output_path,
    parity_inputs,
    record_export,
    write_export,
)
from core.serving.export import check_parity as parity_of
from core.serving.infer import LoadedModel, load_model
from core.store import Store
from core.training.outputs import classifier_layer, features_of

PREDICT_SCRIPT = Path(__file__).with_name("package_predict.py")
BANK = "features_bank.npy"  # training images' normalised features, for the kNN unknown score
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
        knn = loaded.detector is not None and loaded.detector.method == "knn"
        rule = unknown_rule(loaded, knn and add_features_output(fp32, loaded, inputs))
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
        card = package_card(loaded, run, precision, parity, details, test, report) \
            | {"unknown": rule}
        write_zip(path, model_file, card, loaded.detector.bank if rule and rule["bank"] else None)
    card_path = card_file(path)
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


def add_features_output(path: Path, loaded: LoadedModel, x) -> bool:
    """Give the ONNX model a second output, `features` (what the last linear layer reads),
    which the kNN unknown detector scores; True when its values match PyTorch's on `x`."""
    import onnx

    model = onnx.load(str(path))
    producers = {out: node for node in model.graph.node for out in node.output}
    node = producers.get("logits")
    if node is not None and node.op_type == "Add":  # MatMul + Add instead of Gemm
        node = next((producers[i] for i in node.input
                     if i in producers and producers[i].op_type == "MatMul"), None)
    layer = classifier_layer(loaded.model)
    if node is None or node.op_type not in ("Gemm", "MatMul") or layer is None:
        return False
    model.graph.node.append(onnx.helper.make_node("Identity", [node.input[0]], ["features"]))
    model.graph.output.append(onnx.helper.make_tensor_value_info(
        "features", onnx.TensorProto.FLOAT, ["batch", layer.in_features]))
    onnx.save(model, str(path))
    with features_of(loaded.model) as captured, torch.no_grad():
        loaded.model(torch.from_numpy(x))
    got = quantize.session(path).run(["features"], {"input": x})[0]
    return bool(captured) and got.shape == captured[0].shape and \
        float(np.abs(got - captured[0].numpy()).max()) <= 1e-3


def unknown_rule(loaded: LoadedModel, has_features: bool) -> dict | None:
    """The run's unknown-input rule as the package applies it; None when the run has none,
    or when its kNN rule cannot be carried (no feature bank, no features output)."""
    rule = loaded.card.get("unknown")
    if not rule or loaded.detector is None:
        return None
    knn = rule["method"] == "knn"
    if knn and not has_features:
        return None
    return {"method": rule["method"], "threshold": float(rule["threshold"]),
            "knn_k": rule.get("knn_k"), "bank": BANK if knn else None}


def package_card(loaded: LoadedModel, run: dict, precision: str, parity: dict, details: dict,
                 test: dict | None, report: dict | None) -> dict:
    """model.json: what predict.py reads, and what a person needs to trust the file."""
    import onnxruntime

    card = loaded.card
    size, channels, classes = card["image_size"], card["in_chans"], card["classes"]
    resize_mode = card.get("resize") or "crop"  # the run's resolved mode (model.json, datafit)
    if report:
        report = report | {"changed": report["changed"][:CHANGED_KEPT],
                           "changed_count": len(report["changed"])}
    return {
        "format": "onnx", "file": "model.onnx", "precision": precision,
        "run_id": run["run_id"], "run_name": run["name"],
        **{key: card.get(key) for key in ("model", "spec", "classes", "in_chans", "image_size",
                                          "mean", "std")},
        "resize_mode": resize_mode, "temperature": loaded.temperature, "unknown": None,
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


def write_zip(path: Path, model_file: Path, card: dict, bank: np.ndarray | None) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(model_file, "model.onnx")
            archive.writestr("model.json", json.dumps(card, indent=2))
            archive.write(PREDICT_SCRIPT, "predict.py")
            if bank is not None:
                buffer = io.BytesIO()
                np.save(buffer, bank.astype(np.float16))  # as the run keeps it
                archive.writestr(BANK, buffer.getvalue())
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
    if card.get("temperature") not in (None, 1.0):
        figures.append("- Probabilities are calibrated on the validation split: softmax(logits "
                       f"/ {card['temperature']:.3f}).")
    rule = card.get("unknown")
    if rule:
        figures.append(f"- An image like none of the training images (method {rule['method']}, "
                       f"score under {rule['threshold']:.4g}) is reported as unknown.")
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
