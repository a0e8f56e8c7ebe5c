"""`data label-issues`: the images whose labels are likely wrong, worst first."""

from __future__ import annotations

import argparse

from core.cli.common import Result, command
from core.config import DEVICES

SHOWN = 20  # issues listed in the text output (--json has all)


def tqdm_progress(label: str):
    """A tqdm bar on stderr over the folds' epochs (done, total)."""
    from tqdm import tqdm

    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="epoch")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
    return report


def data_label_issues(args: argparse.Namespace) -> Result:
    from core.analysis.label_issues import label_issues  # torch, cleanlab

    result = label_issues(args.data, folds=args.folds, model=args.model, epochs=args.epochs,
                          device=args.device, seed=args.seed,
                          progress=tqdm_progress(f"{args.folds}-fold predictions"))
    issues = result["issues"]
    lines = [f"{len(issues)} likely label errors in {args.data} ({result['images']} images, "
             f"out-of-fold accuracy {result['out_of_fold_acc']:.3f}), worst first:"]
    lines += [f"{issue['score']:.3f}  {issue['file']}  given {issue['given']!r}, suggested "
              f"{issue['suggested']!r}  ({issue['source']})" for issue in issues[:SHOWN]]
    if len(issues) > SHOWN:
        lines.append(f"… and {len(issues) - SHOWN} more (--json lists all)")
    return result, "\n".join(lines), 0


def register(data) -> None:
    """Under `data` (core.cli.data)."""
    sub = command(data, "label-issues", data_label_issues,
                  "find likely wrong labels (k-fold predictions ranked by cleanlab)")
    sub.add_argument("--data", required=True, metavar="NAME")
    sub.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    sub.add_argument("--model", default="tiny-cnn", help="the fold models' network")
    sub.add_argument("--epochs", type=int, default=6, help="epochs per fold (default 6)")
    sub.add_argument("--device", default="auto", choices=DEVICES)
    sub.add_argument("--seed", type=int, default=0)
