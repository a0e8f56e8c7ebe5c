"""`predict` and `export`: a trained run's model put to use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import Result, command, fmt


def predict(args: argparse.Namespace) -> Result:
    from core.serving.infer import load_model  # torch

    loaded = load_model(args.run)
    images = [loaded.open(path) for path in args.images]
    rows = loaded.predict(images, args.top_k)
    predictions = [{"image": str(path)} | row for path, row in zip(args.images, rows, strict=True)]
    text = "\n".join(f"{p['image']}: " + ("none of the classes I know (closest: "
                                          if p["unknown"] else "")
                     + ", ".join(f"{t['label']} {t['prob']:.3f}" for t in p["top"])
                     + (")" if p["unknown"] else "") for p in predictions)
    return {"run_id": loaded.run_id, "temperature": loaded.temperature,
            "detector": detector_info(loaded), "predictions": predictions}, text, 0


def detector_info(loaded) -> dict | None:
    """The rule behind `unknown`: method and threshold (None for runs trained before it)."""
    if loaded.detector is None:
        return None
    return {"method": loaded.detector.method, "threshold": loaded.detector.threshold}


def export(args: argparse.Namespace) -> Result:
    from core.serving.export import export_run  # torch

    if args.format == "package":
        return export_package(args)
    if args.quantize:
        raise ValueError("--quantize goes with --format package (the zip with predict.py).")
    result = export_run(args.run, args.format, args.out)
    parity = result["parity"]
    text = (f"exported run {result['run_id']} as {result['format']} to {result['path']} "
            f"(card {result['card']}); parity on {parity['images']} {parity['inputs']} images: "
            f"max |diff| {fmt(parity['max_abs_diff'], '.2e')}, "
            f"top-1 agreement {fmt(parity['top1_agreement'], '.3f')}")
    if parity["passed"]:
        return result, text, 0
    print(f"error: the exported model's outputs differ from PyTorch's by more than "
          f"{parity['tolerance']:g} (max {fmt(parity['max_abs_diff'], '.2e')}); do not ship "
          "it. Try the other format.", file=sys.stderr)
    return result, text, 1


def export_package(args: argparse.Namespace) -> Result:
    from core.serving.package import build_package  # torch

    result = build_package(args.run, args.out, args.quantize)
    test = result["test"]
    figures = (f"{test['split']} accuracy {test['accuracy']:.4f} on {test['images']} images"
               if test else "accuracy not measured (the run's dataset is gone)")
    text = (f"packaged run {result['run_id']} ({result['precision'].upper()}) to "
            f"{result['path']}: {figures}")
    report = result["quantization"]
    if report:
        text += "\n" + report["verdict"]
    if report and not report["accepted"]:
        print(f"warning: {report['verdict']}", file=sys.stderr)
        return result, text, 1
    return result, text, 0


def register(commands) -> None:
    sub = command(commands, "predict", predict, "classify images with a trained run")
    sub.add_argument("--run", required=True)
    sub.add_argument("--top-k", type=int, default=3)
    sub.add_argument("images", nargs="+", type=Path)

    sub = command(commands, "export", export,
                  "export a run as ONNX, TorchScript, safetensors or a package")
    sub.add_argument("--run", required=True)
    sub.add_argument("--format", required=True,
                     choices=("onnx", "torchscript", "safetensors", "package"),
                     help="package: a zip with model.onnx, model.json, predict.py, README")
    sub.add_argument("--quantize", choices=("int8", "fp16"),
                     help="package: a smaller model, kept only when its test accuracy is "
                          "within 1 point of FP32")
    sub.add_argument("--out", required=True, type=Path,
                     help="file (or folder) to write; the model card goes beside it")
