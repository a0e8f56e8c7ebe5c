"""`compare RUN_A RUN_B`: what B fixed and broke relative to A on the same images, and
whether the difference is real (core.analysis.paired)."""

from __future__ import annotations

import argparse

from core.cli.common import Result, command, fmt


def compare(args: argparse.Namespace) -> Result:
    from core.analysis.paired import compare_runs

    result = compare_runs(args.run_a, args.run_b, split=args.split)
    counts = result["counts"]
    lines = [f"{side.upper()}: {run['name']} ({run['run_id']}): accuracy {fmt(run['accuracy'])} "
             f"(95% CI {fmt(run['ci95'][0])}–{fmt(run['ci95'][1])}) on {result['images']} "
             f"{result['split']} images" for side, run in (("a", result["a"]), ("b", result["b"]))]
    lines.append(f"fixed {counts['fixed']}, broken {counts['broken']}, both wrong "
                 f"{counts['both_wrong']}; McNemar exact p = {result['p_value']:.4g}")
    lines.append(result["verdict"])
    return result, "\n".join(lines), 0


def register(commands) -> None:
    sub = command(commands, "compare", compare, "compare two runs image by image: what changed "
                  "and whether the difference is real (McNemar's exact test)")
    sub.add_argument("run_a", metavar="RUN_A", help="the reference run")
    sub.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    sub.add_argument("--split", default="test", choices=("test", "val"),
                     help="the split whose images to compare on (default: test)")
