"""Classify a whole zip (or folder) of images with one run, and score it when it is labelled.

The files go through the dataset importer's own enumerator and checks (core.data.archive
and core.data.ingest): no path leaves the archive, no links, capped counts and sizes, and
every image decoded in memory under a pixel cap. A zip laid out in class folders whose
names are the run's classes is scored: accuracy, confusion matrix, per-class metrics.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from core.data.archive import Entry, take
from core.data.images import ImageRejected, decode_image
from core.data.ingest import (
    IngestLimits,
    assign_classes,
    check_total_size,
    open_source,
    read_entry,
    screen_entries,
)
from core.serving.infer import LoadedModel
from core.training.evaluate import per_class_metrics

BATCH = 64
Progress = Callable[[int, int], None]


def classify_archive(loaded: LoadedModel, source: Path | str | bytes | BinaryIO, top_k: int = 3,
                     progress: Progress | None = None,
                     limits: IngestLimits | None = None) -> dict:
    """Classify every image in a zip (path, bytes or binary file object) or a folder.

    Returns {rows: [{file, label, prob, top, unknown, score, true_label}], skipped:
    [{file, reason}], unknown (how many rows are "none of the classes I know"), labelled,
    accuracy, confusion, per_class, classes}; the last four scores are None when no file sits
    in a folder named like one of the run's classes (they count every row, unknown or not)."""
    limits = limits or IngestLimits()
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    with open_source(source, limits) as (what, entries):
        listed = take(entries, limits.max_entries, what)
        check_total_size(listed, what, limits)
        plan, skipped = plan_files(listed, loaded.classes, limits)
        rows = classify_plan(loaded, plan, top_k, limits, skipped, progress)
    return {"rows": rows, "skipped": skipped, "classes": list(loaded.classes),
            "unknown": sum(1 for row in rows if row["unknown"])} | score(rows, loaded.classes)


def plan_files(entries: list[Entry], classes: list[str], limits: IngestLimits,
               ) -> tuple[list[tuple[Entry, str | None]], list[dict]]:
    """(entry, true label or None) for every file worth decoding; {file, reason} for the rest.
    The true label is the ImageFolder class folder, kept only when it is one of `classes`."""
    candidates, skipped = screen_entries(entries, limits)
    foldered, _ = assign_classes(candidates)  # the rest sit in no class folder: unlabelled
    folder_of = {id(entry): cls for entry, cls in foldered}
    known = set(classes)
    plan = []
    for entry in candidates:
        label = folder_of.get(id(entry))
        plan.append((entry, label if label in known else None))
    return plan, skipped


def classify_plan(loaded: LoadedModel, plan: list[tuple[Entry, str | None]], top_k: int,
                  limits: IngestLimits, skipped: list[dict],
                  progress: Progress | None) -> list[dict]:
    """Decode and classify in batches of BATCH; undecodable files join `skipped`."""
    rows: list[dict] = []
    if progress:
        progress(0, len(plan))
    done = 0
    for batch in decoded_batches(plan, limits, skipped, loaded.card["image_size"]):
        images = [image for _, _, image in batch]
        for (entry, label, _), answer in zip(batch, loaded.predict(images, top_k), strict=True):
            top = answer["top"]
            rows.append({"file": entry.name, "label": top[0]["label"], "prob": top[0]["prob"],
                         "top": top, "unknown": answer["unknown"], "score": answer["score"],
                         "true_label": label})
        done += len(batch)
        if progress:
            progress(done, len(plan))
    return rows


def decoded_batches(plan: list[tuple[Entry, str | None]], limits: IngestLimits,
                    skipped: list[dict], draft_to: int | None = None,
                    ) -> Iterator[list[tuple[Entry, str | None, Image.Image]]]:
    """Batches of decoded images; with `draft_to` (the model's input size) decoded as the
    training cache decodes them."""
    batch = []
    for entry, label in plan:
        try:
            image = decode_image(read_entry(entry), limits.max_pixels, draft_to)
        except ImageRejected as error:
            skipped.append({"file": entry.name, "reason": error.reason})
            continue
        batch.append((entry, label, image))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def score(rows: list[dict], classes: list[str]) -> dict:
    """Accuracy, confusion matrix (rows: true class, columns: predicted) and per-class
    metrics over the rows that have a true label; None for all three when none has."""
    labelled = [row for row in rows if row["true_label"] is not None]
    if not labelled:
        return {"labelled": 0, "accuracy": None, "confusion": None, "per_class": None}
    index = {cls: i for i, cls in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for row in labelled:
        confusion[index[row["true_label"]], index[row["label"]]] += 1
    return {"labelled": len(labelled),
            "accuracy": float(np.trace(confusion) / len(labelled)),
            "confusion": confusion.tolist(),
            "per_class": per_class_metrics(confusion, classes)}


def rows_to_csv(rows: list[dict]) -> str:
    """One line per image: file, predicted label, its probability, true label, correct,
    unknown (true: like none of the classes), and the top-k as `label:prob` pairs separated
    by `;`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "label", "prob", "true_label", "correct", "unknown", "top"])
    for row in rows:
        truth = row.get("true_label")
        correct = "" if truth is None else str(truth == row["label"]).lower()
        top = ";".join(f"{item['label']}:{item['prob']:.4f}" for item in row.get("top", []))
        unknown = str(bool(row.get("unknown"))).lower()
        writer.writerow([row["file"], row["label"], f"{row['prob']:.4f}", truth or "", correct,
                         unknown, top])
    return buffer.getvalue()
