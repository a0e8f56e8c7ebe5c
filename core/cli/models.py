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
    tops = loaded.top_k(images, args.top_k)
    predictions = [{"image": str(path), "top": top}
                   for path, top in zip(args.images, tops, strict=True)]
    text = "\n".join(f"{p['image']}: " + ", ".join(f"{t['label']} {t['prob']:.3f}"
                                                   for t in p["top"]) for p in predictions)
    return {"run_id": loaded.run_id, "predictions": predictions}, text, 0


def export(args: argparse.Namespace) -> Result:
    from core.serving.export import export_run  # torch

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


def register(commands) -> None:
    sub = command(commands, "predict", predict, "classify images with a trained run")
    sub.add_argument("--run", required=True)
    sub.add_argument("--top-k", type=int, default=3)
    sub.add_argument("images", nargs="+", type=Path)

    sub = command(commands, "export", export, "export a run as ONNX, TorchScript or safetensors")
    sub.add_argument("--run", required=True)
    sub.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors"))
    sub.add_argument("--out", required=True, type=Path,
                     help="file (or folder) to write; the model card goes beside it")
