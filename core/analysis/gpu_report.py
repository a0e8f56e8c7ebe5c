"""`bench gpu` as a whole: the CUDA paths (core.analysis.gpu_check's sections), then the GPU
targets, and the markdown table of both.

A target is measured on CUDA only; in a smoke run (or on the CPU) its code runs at tiny sizes
and its row says "smoke": no figure from one is a measurement of the target.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.analysis.gpu_check import (
    FAILED,
    OK,
    SECTIONS,
    SKIPPED,
    Context,
    prepare_workspace,
    run_section,
)


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    run: Callable[[Context], tuple[str, bool | None]]  # (measured, met; None: not judged)


def is_measurement(ctx: Context) -> bool:
    return ctx.cuda and not ctx.smoke


def judged(ctx: Context, met: bool) -> bool | None:
    return met if is_measurement(ctx) else None


def fashion_mnist(ctx: Context) -> str:
    """The dataset `fm` in the scratch workspace (a small subset in a smoke run)."""
    from core.data.dataset import DatasetError, list_datasets
    from core.data.demo import create_demo

    if "fm" in list_datasets():
        return "fm"
    subset = {"per_class": 30, "test_per_class": 10} if ctx.smoke else {}
    try:
        create_demo("fashion-mnist", "fm", folder=ctx.fm_dir, **subset)
    except DatasetError as error:
        raise FileNotFoundError(f"{error} (or give --fm-dir DIR with the four IDX files)") \
            from None
    return "fm"


def fm_to_94(ctx: Context) -> tuple[str, bool | None]:
    from core.training.loop import fit
    from core.training.recipes import recipe_config

    overrides = {"device": ctx.device_name, "seed": 0}
    if ctx.smoke:
        overrides |= {"epochs": 1, "model": "tiny-cnn", "compile": False}
    config = recipe_config("speed-run", fashion_mnist(ctx), overrides)
    result = fit(config, ctx.home / "scratch" / "fm-speed-run")
    test, seconds = result["test_acc"] or 0.0, result["train_seconds"]
    measured = (f"test {test:.4f} in {seconds:.1f} s of training ({result['epochs']} epochs, "
                f"{config.model}, batch {result['batch_size']}, {result['compile_mode']})")
    return measured, judged(ctx, test >= 0.94 and seconds <= 10.0)


def pipeline_rows(ctx: Context, model: str, size: int, batch: int) -> dict[str, dict]:
    """bench.pipeline's rows (naive, engine, ceiling) by their first word."""
    from core.analysis.bench import pipeline

    if ctx.smoke:  # one tiny pipeline serves every such target: the code, not the figures
        model, size, batch, steps, warmup = "tiny-cnn", 32, 16, 3, 1
    else:
        steps, warmup = (20, 5) if ctx.quick else (50, 10)
    key = f"pipeline/{model}/{size}/{batch}"
    if key not in ctx.runs:
        rows = pipeline("shapes", model, image_size=size, batch_size=batch, steps=steps,
                        warmup=warmup, device=ctx.device_name)
        ctx.runs[key] = {row["pipeline"].split()[0]: row for row in rows}
    return ctx.runs[key]


def ratios_at(ctx: Context, size: int, naive_goal: float) -> tuple[str, bool | None]:
    rows = pipeline_rows(ctx, "resnet18", size, 256 if size <= 64 else 128)
    engine = rows["engine"]
    measured = (f"engine {engine['images_per_s']:,.0f} img/s = {engine['vs_naive']:.1f}× naive, "
                f"{engine['share_of_ceiling']:.2f} of the synthetic ceiling")
    return measured, judged(ctx, engine["vs_naive"] >= naive_goal
                            and engine["share_of_ceiling"] >= 0.95)


def resnet50_224(ctx: Context) -> tuple[str, bool | None]:
    rows = pipeline_rows(ctx, "resnet50", 224, 128)
    return (f"engine {rows['engine']['images_per_s']:,.0f} img/s (ceiling "
            f"{rows['ceiling']['images_per_s']:,.0f})", None)


def photo_rates(ctx: Context) -> tuple[str, bool | None]:
    from core.analysis.photo_bench import photos  # bench photos

    rows = photos(images=24 if ctx.smoke else 2000, size=(120, 90) if ctx.smoke else (500, 375))
    rates = [(row["step"].split(" (")[0], row["images_per_s"]) for row in rows
             if "images_per_s" in row]
    return "; ".join(f"{step} {value:,.0f} img/s" for step, value in rates), None


TARGETS = (
    Target("Fashion-MNIST to 94% test", "≥ 94% in ≤ 10 s of training", fm_to_94),
    Target("ResNet-18, 32 px", "engine ≥ 20× naive, ≥ 0.95 of ceiling",
           lambda ctx: ratios_at(ctx, 32, 20.0)),
    Target("ResNet-18, 224 px", "engine ≥ 5× naive, ≥ 0.95 of ceiling",
           lambda ctx: ratios_at(ctx, 224, 5.0)),
    Target("ResNet-50, 224 px", "training images/s (no goal)", resnet50_224),
    Target("Photo import and cache", "images/s with this machine's cores", photo_rates),
)


def run_target(target: Target, ctx: Context) -> dict:
    """One row: {target, goal, measured, met, status, seconds}. Never raises."""
    start = time.perf_counter()
    met = None
    try:
        measured, met = target.run(ctx)
        status = OK if is_measurement(ctx) else "smoke (not a measurement)"
    except (ImportError, FileNotFoundError) as error:
        measured = f"missing {getattr(error, 'name', None) or error}"
        status = SKIPPED
    except Exception as error:  # noqa: BLE001  (every target gets its row)
        measured, status = f"{error.__class__.__name__}: {str(error)[:300]}", FAILED
    return {"target": target.name, "goal": target.goal, "measured": measured,
            "met": {True: "yes", False: "no", None: "—"}[met], "status": status,
            "seconds": round(time.perf_counter() - start, 1)}


def check(device: str = "auto", *, smoke: bool = False, quick: bool = False,
          fm_dir: Path | None = None) -> dict:
    """Every section, then every target, in a scratch workspace: {environment, sections,
    targets}."""
    import torch

    from core.training.device import pick_device

    saved = {name: os.environ.get(name) for name in ("CNN_STUDIO_HOME", "CNN_STUDIO_DB")}
    with tempfile.TemporaryDirectory(prefix="cnn-studio-gpu-") as scratch:
        ctx = Context(pick_device(device), smoke, quick, Path(scratch), fm_dir)
        try:
            prepare_workspace(ctx)
            torch.manual_seed(0)
            sections = [run_section(section, ctx) for section in SECTIONS]
            targets = [run_target(target, ctx) for target in TARGETS]
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return {"environment": environment(ctx), "sections": sections, "targets": targets}


def environment(ctx: Context) -> dict:
    import torch

    device = torch.cuda.get_device_name(ctx.device) if ctx.cuda else \
        f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    return {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "cpu_cores": os.cpu_count(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m core " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"]
            else "python -m core bench gpu",
            "mode": "smoke" if ctx.smoke else "quick" if ctx.quick else "full"}


def markdown(report: dict) -> str:
    """The sections and the targets as one markdown block for bench/RESULTS.md."""
    env = report["environment"]
    lines = ["### GPU check (`bench gpu`)", "",
             f"Device: {env['device']}; torch {env['torch']}, CUDA {env['cuda']}, "
             f"Python {env['python']}, {env['cpu_cores']} CPU cores; {env['date']}; "
             f"mode {env['mode']}  ", f"Command: `{env['command']}`", "",
             "| CUDA path | status | detail | s |", "|---|---|---|---|"]
    lines += [f"| {row['section']} | {row['status']} | {cell(row['detail'])} | "
              f"{row['seconds']:.1f} |" for row in report["sections"]]
    lines += ["", "| target | goal | measured | met | status | s |", "|---|---|---|---|---|---|"]
    lines += [f"| {row['target']} | {row['goal']} | {cell(row['measured'])} | {row['met']} | "
              f"{row['status']} | {row['seconds']:.1f} |" for row in report["targets"]]
    return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def add_arguments(parser) -> None:
    """`bench gpu`'s own flags (the device flag comes with the command)."""
    parser.add_argument("--quick", action="store_true",
                        help="gpu: the targets with fewer timed steps")
    parser.add_argument("--smoke", action="store_true",
                        help="gpu: every section tiny (a minute on a CPU); measures nothing")
    parser.add_argument("--fm-dir", type=Path,
                        help="gpu: the folder of Fashion-MNIST's four IDX files")


def main(argv: list[str] | None = None) -> int:
    """`python -m core.analysis.gpu_report [--quick] [--smoke] [--device D] [--json]`: the
    check without the command line's other commands, so it runs where SQLAlchemy and Streamlit
    are not installed (the sections that record a run then say so)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m core.analysis.gpu_report",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    report = check(args.device, smoke=args.smoke, quick=args.quick, fm_dir=args.fm_dir)
    print(json.dumps(report) if args.json else markdown(report))
    return exit_code(report)


def exit_code(report: dict) -> int:
    """1 when a section or target failed, else 0 (skips are not failures)."""
    rows = report["sections"] + report["targets"]
    return 1 if any(row["status"] == FAILED for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
