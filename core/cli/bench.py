"""`bench …`: the benchmarks whose tables go into bench/RESULTS.md."""

from __future__ import annotations

import argparse

from core.analysis.gpu_report import add_arguments as gpu_report_arguments
from core.cli.common import Result, command
from core.cli.train import add_setting_flags, config_from_args


def bench(args: argparse.Namespace) -> Result:
    if args.kind == "photos":
        return bench_photos(args)
    if args.kind == "gpu":
        return gpu(args)
    if args.kind == "duplicates":
        from core.data.duplicates import bench_duplicates

        row = bench_duplicates(args.images if args.images != 2000 else 100_000)
        return row, (f"duplicates: {row['images']:,} images in {row['seconds']} s; "
                     f"{row['planted_found']}/{row['planted_copies']} planted copies found, "
                     f"{row['groups_found']} groups"), 0
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
    elif args.kind == "formats":
        rows, title = bench_formats_rows(args)
    elif args.kind == "serve":
        from core.analysis.serve_bench import bench_serve

        if not args.run:
            raise ValueError("bench serve needs --run RUN.")
        clients = [int(c) for c in args.clients.split(",")]
        rows = bench_serve(args.run, clients, requests_per_client=args.steps)
        title = "HTTP API: POST /predict, one image per request (loopback, uvicorn)"
    elif args.kind == "defaults":
        from core.analysis.bench_defaults import bench_sets, defaults_vs_seed

        seeds = [int(s) for s in (args.seeds or "0,1,2").split(",")]
        rows = defaults_vs_seed(seeds, args.epochs or 8, args.model or "tiny-cnn",
                                bench_sets(args.data))
        title = "Our defaults vs the seed recipe (Adam 1e-3, no augmentation): test accuracy"
    elif args.kind == "label-issues":
        from core.analysis.bench_labels import planted_precision

        rows = planted_precision("digits", 0.05)
        title = "Label errors: precision on 5% planted (flipped) labels"
    elif args.kind == "estimate":
        from core.analysis.bench_estimate import estimate_vs_actual

        if not args.data:
            raise ValueError("bench estimate needs --data NAME.")
        overrides = {"epochs": args.epochs} if args.epochs else {}
        rows = estimate_vs_actual(args.data, args.recipes.split(","), overrides)
        title = "Time estimate said before Start vs the run it describes"
    elif args.kind == "ingest":
        rows = benchmarks.ingest(args.data, args.image_size or 32)
        title = "Ingest: decoding into the cache"
    elif args.kind == "ood":
        rows, title = ood_rows(args), "Unknown inputs: OOD images flagged at the threshold"
    else:
        if not (args.model or args.recipe):
            raise ValueError("bench accuracy needs --model (or --recipe).")
        seeds = [int(s) for s in (args.seeds or "0").split(",")]
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


def bench_photos(args: argparse.Namespace) -> Result:
    from core.analysis import photo_bench  # Pillow and numpy only

    try:
        width, height = (int(side) for side in args.size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {args.size!r} is not WIDTHxHEIGHT, for example 500x375.") \
            from None
    rows = photo_bench.photos(args.images, (width, height), args.image_size or 150,
                              repeat=args.repeat)
    table = photo_bench.markdown(rows)
    return {"kind": "photos", "rows": rows, "markdown": table}, table, 0


def bench_formats_rows(args: argparse.Namespace) -> tuple[list[dict], str]:
    from core.analysis.formats import WITHIN_POINTS, bench_formats

    if not args.run:
        raise ValueError("bench formats needs --run RUN.")
    result = bench_formats(args.run, repeats=args.steps * 2, warmup=args.warmup,
                           threads=args.threads)
    rows = [{"format": ("★ " if row["best"] else "") + row["format"],
             "test acc": row["accuracy"], "p50 ms (batch 1)": row["p50_ms"],
             "p90 ms (batch 1)": row["p90_ms"], "images/s (batch 32)": row["images_per_s"],
             "file MB": row["size_mb"], "device": row["device"], "best": row["best"]}
            for row in result["rows"]]
    title = (f"Formats of run {result['run_id']} on {result['images']} {result['split']} images "
             f"(★ fastest within {WITHIN_POINTS:g} points of eager FP32; "
             f"{result['threads']} threads)")
    return rows, title


def ood_rows(args: argparse.Namespace) -> list[dict]:
    """`bench ood`: digits vs Fashion-MNIST both ways, or --run RUN against --ood-data NAME."""
    from core.analysis import ood_bench  # torch
    from core.cli.train import given_settings
    from core.data.dataset import load_dataset

    if args.run:
        if not args.ood_data:
            raise ValueError("bench ood --run RUN needs --ood-data NAME (images of none of "
                             "its classes).")
        return ood_bench.evaluate_run(args.run, load_dataset(args.ood_data))
    settings = {key: value for key, value in given_settings(args).items() if key != "data"}
    return ood_bench.ood_benchmark(settings)


def register(commands) -> None:
    sub = command(commands, "bench", bench, "benchmarks (see bench/RESULTS.md)")
    sub.add_argument("kind", choices=("pipeline", "ingest", "accuracy", "latency", "ood",
                                      "formats", "serve", "photos", "gpu", "defaults",
                                      "duplicates", "label-issues", "estimate"))
    sub.add_argument("--recipes", default="cpu-quick,speed-run",
                     help="estimate: comma-separated recipes to estimate and then run")
    sub.add_argument("--run", help="latency, formats, serve: the run whose model to time; ood: "
                                   "the run to show --ood-data's images")
    sub.add_argument("--ood-data", help="ood: a dataset of images of none of the run's classes")
    sub.add_argument("--clients", default="1,8", help="serve: comma-separated client counts")
    sub.add_argument("--threads", type=int, help="formats: intra-op threads for every format")
    add_setting_flags(sub)
    sub.add_argument("--steps", type=int, default=50, help="timed steps per side")
    sub.add_argument("--warmup", type=int, default=5, help="untimed steps per side")
    sub.add_argument("--seeds", help="accuracy, defaults: comma-separated seeds (accuracy: 0; "
                                      "defaults: 0,1,2)")
    sub.add_argument("--targets", default="0.93,0.94", help="accuracy: test-accuracy targets")
    sub.add_argument("--images", type=int, default=2000, help="photos: JPEGs to generate")
    sub.add_argument("--size", default="500x375", help="photos: WIDTHxHEIGHT of each JPEG")
    sub.add_argument("--repeat", type=int, default=3,
                     help="photos: time each step this many times, keep the fastest")
    gpu_report_arguments(sub)
