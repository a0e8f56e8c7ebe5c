"""`bench …`: the benchmarks whose tables go into bench/RESULTS.md."""

from __future__ import annotations

import argparse

from core.cli.common import Result, command
from core.cli.train import add_setting_flags, config_from_args


def bench(args: argparse.Namespace) -> Result:
    from core.analysis import bench as benchmarks  # torch
    from core.analysis.latency import single_image_latency
    from core.training.device import pick_device

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
    elif args.kind == "defaults":
        from core.analysis.bench_defaults import defaults_vs_seed

        seeds = [int(s) for s in (args.seeds or "0,1,2").split(",")]
        rows = defaults_vs_seed(seeds, args.epochs or 8, args.model or "tiny-cnn")
        title = "Our defaults vs the seed recipe (Adam 1e-3, no augmentation): test accuracy"
    elif args.kind == "ingest":
        rows = benchmarks.ingest(args.data, args.image_size or 32)
        title = "Ingest: decoding into the cache"
    else:
        if not (args.model or args.recipe):
            raise ValueError("bench accuracy needs --model (or --recipe).")
        seeds = [int(s) for s in (args.seeds or "0").split(",")]
        targets = [float(t) for t in args.targets.split(",")]
        rows = benchmarks.time_to_accuracy(config_from_args(args), targets, seeds)
        title = "Time to accuracy"
    table = benchmarks.markdown_table(rows, title, device)
    return {"kind": args.kind, "rows": rows, "markdown": table}, table, 0


def register(commands) -> None:
    sub = command(commands, "bench", bench, "benchmarks (see bench/RESULTS.md)")
    sub.add_argument("kind", choices=("pipeline", "ingest", "accuracy", "latency", "defaults"))
    sub.add_argument("--run", help="latency: the run whose model to time")
    add_setting_flags(sub)
    sub.add_argument("--steps", type=int, default=50, help="timed steps per side")
    sub.add_argument("--warmup", type=int, default=5, help="untimed steps per side")
    sub.add_argument("--seeds", help="accuracy, defaults: comma-separated seeds (accuracy: 0; "
                                      "defaults: 0,1,2)")
    sub.add_argument("--targets", default="0.93,0.94", help="accuracy: test-accuracy targets")
