"""`data …`: import, add a built-in dataset, list, delete."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import Result, command, stderr_progress
from core.data import catalog
from core.data.dataset import Dataset
from core.data.demo import DEMOS
from core.data.fit_report import data_fit_lines, data_fit_summary


def data_import(args: argparse.Namespace) -> Result:
    dataset = catalog.import_path(args.path, args.name, val=args.val, test=args.test,
                                  seed=args.seed, image_size=args.image_size,
                                  progress=stderr_progress("importing"))
    return import_result(dataset)


def data_demo(args: argparse.Namespace) -> Result:
    dataset = catalog.add_demo(args.kind, args.name, val=args.val, test=args.test, seed=args.seed,
                               overwrite=args.overwrite, image_size=args.image_size,
                               per_class=args.per_class, test_per_class=args.test_per_class,
                               progress=stderr_progress(f"writing {args.kind}"))
    return import_result(dataset)


def import_result(dataset: Dataset) -> Result:
    summary = dataset.summary() | data_fit_summary(dataset)
    dropped = f", dropped {len(summary['dropped'])}" if summary["dropped"] else ""
    text = (f"dataset {summary['name']}: {summary['kept']} images in {len(summary['classes'])} "
            f"classes{dropped}; splits {summary['splits']}")
    text = "\n".join([text, *data_fit_lines(summary)])
    return summary, text, 0


def data_list(args: argparse.Namespace) -> Result:
    summaries = catalog.summaries()
    for summary in summaries:
        summary.pop("dropped")
    text = "\n".join(f"{s['name']:24} {s['kept']:7} images  {len(s['classes']):3} classes  "
                     f"{s['origin']}" for s in summaries) or "no datasets yet"
    return {"datasets": summaries}, text, 0


def data_delete(args: argparse.Namespace) -> Result:
    catalog.remove(args.name)
    return {"deleted": args.name}, f"deleted dataset {args.name}", 0


def register(commands) -> None:
    data = commands.add_parser("data", help="import, list and delete datasets").add_subparsers()
    for sub in (command(data, "import", data_import, "import a zip, folder or CSV"),
                command(data, "demo", data_demo, "a built-in dataset, no download")):
        sub.add_argument("--name", required=True)
        sub.add_argument("--image-size", type=int, help="also build the cache at this size")
        sub.add_argument("--val", type=float, default=0.1)
        sub.add_argument("--test", type=float, default=0.1)
        sub.add_argument("--seed", type=int, default=0)
    data.choices["import"].add_argument("path", type=Path)
    data.choices["demo"].add_argument("kind", choices=sorted(DEMOS))
    data.choices["demo"].add_argument("--overwrite", action="store_true")
    data.choices["demo"].add_argument("--per-class", type=int, metavar="N",
                                      help="keep N training images per class (seeded)")
    data.choices["demo"].add_argument("--test-per-class", type=int, metavar="N",
                                      help="keep N images per class of an official test set")
    command(data, "list", data_list, "list datasets")
    command(data, "delete", data_delete, "delete a dataset").add_argument("name")
