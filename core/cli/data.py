"""`data …`: import, add a built-in dataset, list, show, dedupe, delete."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import data_labels
from core.cli.common import Result, command, stderr_progress
from core.data import catalog
from core.data.dataset import Dataset
from core.data.demo import DEMOS
from core.data.fit_report import data_fit_lines, data_fit_summary


def data_import(args: argparse.Namespace) -> Result:
    dataset = catalog.import_path(args.path, args.name, val=args.val, test=args.test,
                                  seed=args.seed, image_size=args.image_size,
                                  progress=stderr_progress("importing"),
                                  label_pattern=args.label_pattern)
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
            f"classes{dropped}; splits {summary['splits']}"
            + (f"; layout {summary['layout']}" if summary["layout"] else "")
            + "".join(f"\n  note: {note}" for note in summary["notes"]))
    text = "\n".join([text, *data_fit_lines(summary)])
    return summary, text, 0


def data_show(args: argparse.Namespace) -> Result:
    shown = catalog.show(args.name)
    lines = [f"dataset {shown['name']}: {shown['kept']} images, layout "
             f"{shown['layout'] or 'unknown (imported before layouts were recorded)'}",
             f"{'class':24} {'train':>7} {'val':>7} {'test':>7}"]
    lines += [f"{cls:24} {row['train']:7} {row['val']:7} {row['test']:7}"
              for cls, row in shown["class_splits"].items()]
    lines += [f"note: {note}" for note in shown["notes"]]
    for group in shown["duplicates"]:
        lines.append(f"{group['kind']} duplicates: " + ", ".join(
            f"{file} ({split})" for file, split in zip(group["files"], group["splits"],
                                                        strict=True)))
    lines.append(f"{len(shown['items'])} items (--json lists each: file, source, label, split)")
    return shown, "\n".join(lines), 0


def data_dedupe(args: argparse.Namespace) -> Result:
    from core.analysis.dedupe import dedupe  # torch

    dataset, removed = dedupe(args.name, args.keep, args.new_name)
    summary = dataset.summary() | {"removed": removed, "source": args.name}
    return summary, (f"saved dataset {dataset.name}: {len(dataset.items)} images, "
                     f"{len(removed)} extra copies removed; {args.name} is unchanged"), 0


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
    data.choices["import"].add_argument(
        "--label-pattern", metavar="REGEX",
        help="read each label from the file name: the first group of REGEX, searched in the "
             r"name (e.g. '^([a-z]+)_\d+' reads cat from cat_12.jpg)")
    data.choices["demo"].add_argument("kind", choices=sorted(DEMOS))
    data.choices["demo"].add_argument("--overwrite", action="store_true")
    data.choices["demo"].add_argument("--per-class", type=int, metavar="N",
                                      help="keep N training images per class (seeded)")
    data.choices["demo"].add_argument("--test-per-class", type=int, metavar="N",
                                      help="keep N images per class of an official test set")
    command(data, "list", data_list, "list datasets")
    command(data, "show", data_show, "classes, splits, layout, duplicates and items of a "
            "dataset").add_argument("name")
    dedupe = command(data, "dedupe", data_dedupe, "save a new version without duplicate copies")
    dedupe.add_argument("name")
    dedupe.add_argument("--keep", choices=("first",), default="first",
                        help="which copy of each group stays: the first in upload order")
    dedupe.add_argument("--new-name", help="the new version's name (default NAME-vN)")
    command(data, "delete", data_delete, "delete a dataset").add_argument("name")
    data_labels.register(data)
