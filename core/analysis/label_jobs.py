"""The label-error search as a background job, for the Error analysis page.

A job of kind `label-issues` in the store's imports table (core.runs.imports): it names the
dataset it reads and what to run (folds, model, epochs, device, seed). The import worker runs
it with the runner `python -m core worker --imports` gives it (core.analysis.label_issues
.run_label_job), writing epochs done of folds × epochs, so the page shows the fold and epoch;
cancelling stops it at the next epoch's end. The result is kept beside the dataset
(cache/label-issues.json), so a reload, another tab or the command line sees it.

Torch-free: the page submits, polls and reads the result without loading torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.data.dataset import Dataset, DatasetError, load_dataset
from core.runs.imports import ACTIVE_IMPORTS, ensure_import_worker, keep_imports_moving, new_job_id
from core.store import Store

KIND = "label-issues"
RESULT_FILE = "label-issues.json"


def submit_label_issues(name: str, *, folds: int = 5, model: str = "tiny-cnn",
                        epochs: int | None = None, device: str = "auto", seed: int = 0,
                        store: Store | None = None, start_worker: bool = True) -> str:
    """Queue the label-error search on dataset `name`; returns the job id."""
    store = store or Store()
    load_dataset(name)  # a missing dataset fails here, not in the worker
    if folds < 2:
        raise ValueError("Use at least 2 folds: each image is predicted by a model trained on "
                         "the other folds.")
    if active_label_job(name, store):
        raise DatasetError(f"The search for label errors in {name!r} is already under way.")
    request = {"folds": folds, "model": model, "device": device, "seed": seed}
    if epochs is not None:
        request["epochs"] = epochs
    job_id = new_job_id()
    store.create_import(job_id, name, KIND, request)
    if start_worker:
        ensure_import_worker()
    return job_id


def label_jobs(name: str, store: Store) -> list[dict]:
    """This dataset's recent label-error jobs whose notice is open, newest first (and what a
    poll does: dead workers' jobs interrupted, a worker started for queued ones)."""
    return [job for job in keep_imports_moving(store, kinds=(KIND,)) if job["name"] == name]


def active_label_job(name: str, store: Store) -> dict | None:
    return next((job for job in label_jobs(name, store) if job["status"] in ACTIVE_IMPORTS),
                None)


def progress_text(job: dict) -> str:
    """'fold 2 of 5, epoch 3 of 6' from the epochs done of folds × epochs."""
    folds, done, total = int(job["request"].get("folds", 5)), job["done"], job["total"]
    if not total:
        return "starting"
    epochs = max(1, total // max(1, folds))
    if done >= total:
        return f"all {folds} folds trained, ranking"
    return f"fold {done // epochs + 1} of {folds}, epoch {done % epochs + 1} of {epochs}"


def result_path(dataset: Dataset) -> Path:
    return dataset.folder / "cache" / RESULT_FILE


def saved_label_issues(dataset: Dataset) -> dict | None:
    """The last label-issues result of this dataset's current content, or None."""
    path = result_path(dataset)
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("content_hash") == dataset.content_hash else None


ACCEPT, KEEP, DROP = "accept", "keep", "drop"  # what the queue does with one likely error


def queue_edits(result: dict, decisions: dict[int, str]) -> tuple[set[int], dict[int, str]]:
    """(item indices to drop, item index → class to relabel as) from the queue's decisions
    (item index → accept, keep or drop) on a saved result's issues."""
    suggested = {int(issue["index"]): issue["suggested"] for issue in result["issues"]}
    drop = {index for index, choice in decisions.items() if choice == DROP}
    relabel = {index: suggested[index] for index, choice in decisions.items()
               if choice == ACCEPT and index in suggested}
    return drop, relabel
