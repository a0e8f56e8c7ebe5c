"""`bench …`: the benchmarks whose tables go into bench/RESULTS.md."""

from __future__ import annotations

import argparse

from core.analysis.gpu_report import add_arguments as gpu_report_arguments
from core.cli.common import Result, command
from core.cli.train import add_setting_flags, config_from_args


def bench(args: argparse.Namespace) -> Result:
    from core.analysis import bench as benchmarks  # torch
    from core.analysis.latency import single_image_latency
    from core.training.device import pick_device

    if args.kind == "gpu":
        return gpu(args)
    device = pick_device(args.device or "auto")
    if args.kind == "pipeline":
        rows = benchmarks.pipeline(args.data, args.model or "tiny-cnn", image_size=args.image_size,
                                   batch_size=args.batch_size or 64, steps=args.steps,
                                   warmup=args.warmup, device=args.device or "auto")
        title = "Engine vs naive pipeline vs synthetic ceiling (training images/s)"
    elif args.kind == "latency":
        if not args.run:
            raise ValueError("bench latency needs --run RUN.")
        rows = [single_image_latency(args.run, repeats=args.steps)]
        title = "Single-image latency, model loaded once (ms)"
    elif args.kind == "ingest":
        rows = benchmarks.ingest(args.data, args.image_size or 32)
        title = "Ingest: decoding into the cache"
    else:
        if not (args.model or args.recipe):
            raise ValueError("bench accuracy needs --model (or --recipe).")
        seeds = [int(s) for s in args.seeds.split(",")]
        targets = [float(t) for t in args.targets.split(",")]
        rows = benchmarks.time_to_accuracy(config_from_args(args), targets, seeds)
        title = "Time to accuracy"
    table = benchmarks.markdown_table(rows, title, device)
    return {"kind": args.kind, "rows": rows, "markdown": table}, table, 0


def gpu(args: argparse.Namespace) -> Result:
    """Every CUDA path, then the GPU targets (core.analysis.gpu_report)."""
    from core.analysis import gpu_report  # torch

    report = gpu_report.check(args.device or "auto", smoke=args.smoke, quick=args.quick,
                              fm_dir=args.fm_dir)
    return report, gpu_report.markdown(report), gpu_report.exit_code(report)


def register(commands) -> None:
    sub = command(commands, "bench", bench, "benchmarks (see bench/RESULTS.md)")
    sub.add_argument("kind", choices=("pipeline", "ingest", "accuracy", "latency", "gpu"))
    sub.add_argument("--run", help="latency: the run whose model to time")
    add_setting_flags(sub)
    sub.add_argument("--steps", type=int, default=50, help="timed steps per side")
    sub.add_argument("--warmup", type=int, default=5, help="untimed steps per side")
    sub.add_argument("--seeds", default="0", help="accuracy: comma-separated seeds")
    sub.add_argument("--targets", default="0.93,0.94", help="accuracy: test-accuracy targets")
    gpu_report_arguments(sub)
