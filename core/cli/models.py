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


def model_summary(args: argparse.Namespace) -> Result:
    """Per layer: output shape, parameters and FLOPs for one image (Keras' model.summary())."""
    from models import create_model, summary_text  # torch
    from models import model_summary as summarise

    channels, classes, size = args.channels, args.classes, args.image_size
    if args.data:
        from core.data.cache import default_image_size
        from core.data.dataset import load_dataset

        dataset = load_dataset(args.data)
        channels, classes = dataset.channels, len(dataset.classes)
        size = size or default_image_size(dataset)
    size = size or DEFAULT_SUMMARY_SIZE
    model = create_model(args.model, in_chans=channels, num_classes=classes, image_size=size)
    summary = summarise(model, in_chans=channels, image_size=size, depth=args.depth)
    payload = {"model": args.model, "in_chans": channels, "num_classes": classes,
               "image_size": size} | summary
    text = (f"{args.model} for {channels}-channel {size} px images, {classes} classes\n"
            + summary_text(summary))
    return payload, text, 0


DEFAULT_SUMMARY_SIZE = 32  # the image size of a summary without --data or --image-size


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

    model = commands.add_parser("model", help="describe a network").add_subparsers()
    sub = command(model, "summary", model_summary,
                  "per layer: output shape, parameters and FLOPs (like Keras' model.summary())")
    sub.add_argument("model", help="a preset, a timm architecture or a JSON layer spec")
    sub.add_argument("--data", help="size the network for this dataset (channels, classes, "
                                    "image size)")
    sub.add_argument("--image-size", type=int, help="pixels per side (default: the dataset's, "
                                                    f"else {DEFAULT_SUMMARY_SIZE})")
    sub.add_argument("--channels", type=int, default=3, help="without --data (default 3)")
    sub.add_argument("--classes", type=int, default=10, help="without --data (default 10)")
    sub.add_argument("--depth", type=int, help="one row per module this many levels down "
                                               "(default: every leaf layer)")
