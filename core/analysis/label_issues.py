"""Likely wrong labels: every image predicted by a model that never trained on it (k-fold
cross-validation with a fast preset), ranked by confident learning (cleanlab).

cleanlab's `find_label_issues` (prune by noise rate) decides which images are likely
mislabelled from the out-of-fold probabilities, class by class, and ranks them by
self-confidence (the probability the model gives the given label): lowest first. The result is
kept beside the dataset (`cache/label-issues.json`) for the Error analysis page's queue.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from core.analysis.label_jobs import result_path, saved_label_issues
from core.config import TrainConfig
from core.data.cache import dataset_resize, default_image_size, load_cache
from core.data.dataset import Dataset, DatasetError, load_dataset
from core.data.loader import Augment, DeviceSplit, channel_stats, to_model_input
from core.data.mirror import resolve_flip
from core.data.shift import resolve_shift
from core.durable import write_json_atomic
from core.training.device import pick_device
from core.training.optim import make_optimizer
from core.training.schedule import lr_factor, steps_per_epoch
from models import create_model

FAST_EPOCHS = 6  # per fold: the fast preset (tiny-cnn, AdamW one-cycle, batch 64)
FAST_BATCH = 64
Progress = Callable[[int, int], None] | None


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..folds-1) of each item: every class dealt round-robin after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = np.arange(len(members)) % folds
    return fold_of


def train_fold(config: TrainConfig, images: np.ndarray, labels: np.ndarray, num_classes: int,
               flip: bool, device: torch.device, tick: Callable[[], None]) -> torch.nn.Module:
    """A model trained on these images with the fast preset; `tick` after every epoch."""
    torch.manual_seed(config.seed)
    mean, std = (torch.tensor(v, device=device) for v in channel_stats(images))
    model = create_model(config.model, in_chans=images.shape[3], num_classes=num_classes,
                         image_size=images.shape[1]).to(device)
    optimizer = make_optimizer(config, model)
    split = DeviceSplit(images, labels, device)
    per_epoch = steps_per_epoch(len(split), config.batch_size)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    augment = Augment(flip, config.pad_crop, config.jitter)
    step = 0
    model.train()
    for _ in range(config.epochs):
        for x_uint8, y in split.batches(config.batch_size, shuffle=True, generator=generator,
                                        drop_last=True):
            for group in optimizer.param_groups:
                group["lr"] = config.peak_lr() * lr_factor(config, step, per_epoch)
            loss = F.cross_entropy(model(to_model_input(x_uint8, mean, std, augment, generator)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        tick()
    model.eval()
    model.normalisation = (mean, std)  # for predict_fold
    return model


@torch.no_grad()
def predict_fold(model: torch.nn.Module, images: np.ndarray, device: torch.device) -> np.ndarray:
    mean, std = model.normalisation
    out = []
    for start in range(0, len(images), 512):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + 512])).to(device)
        out.append(torch.softmax(model(to_model_input(x, mean, std)).float(), 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def out_of_fold_probabilities(dataset: Dataset, *, folds: int = 5, model: str = "tiny-cnn",
                              epochs: int = FAST_EPOCHS, device: str = "auto", seed: int = 0,
                              progress: Progress = None) -> np.ndarray:
    """N×K probabilities of every item, each from the fold model that never saw it."""
    labels = np.array([item.label for item in dataset.items], dtype=np.int64)
    counts = np.bincount(labels, minlength=len(dataset.classes))
    if folds < 2:
        raise ValueError("--folds must be at least 2 (each image is predicted by a model "
                         "trained on the other folds).")
    if (counts[counts > 0] < folds).any() or (counts > 0).sum() < 2:
        raise DatasetError(f"Every class needs at least {folds} images for {folds}-fold "
                           "cross-validation; use fewer folds (--folds) or add images.")
    size = default_image_size(dataset)
    images = np.asarray(load_cache(dataset, size, mode=dataset_resize(dataset)[0]))
    flip, _ = resolve_flip("auto", dataset)
    shift, _ = resolve_shift(None, dataset, size)
    config = TrainConfig(data=dataset.name, model=model, epochs=epochs, batch_size=FAST_BATCH,
                         device=device, seed=seed, pad_crop=shift)
    torch_device = pick_device(device)
    fold_of = stratified_folds(labels, folds, seed)
    probs = np.zeros((len(labels), len(dataset.classes)), dtype=np.float32)
    done, total = 0, folds * epochs

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    for fold in range(folds):
        held = fold_of == fold
        fold_model = train_fold(config, images[~held], labels[~held], len(dataset.classes), flip,
                                torch_device, tick)
        probs[held] = predict_fold(fold_model, images[held], torch_device)
    return probs


def rank_label_issues(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the likely label errors, worst first; every item's label quality score)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    return np.asarray(ranked, dtype=np.int64), get_label_quality_scores(labels, probs)


def label_issues(name: str, *, folds: int = 5, model: str = "tiny-cnn",
                 epochs: int = FAST_EPOCHS, device: str = "auto", seed: int = 0,
                 progress: Progress = None) -> dict:
    """{"issues": [{index, file, source, given, suggested, score}], worst first, and what was
    run}; kept with the dataset for the Error analysis page."""
    dataset = load_dataset(name)
    probs = out_of_fold_probabilities(dataset, folds=folds, model=model, epochs=epochs,
                                      device=device, seed=seed, progress=progress)
    labels = np.array([item.label for item in dataset.items], dtype=np.int64)
    ranked, scores = rank_label_issues(labels, probs)
    issues = [{"index": int(i), "file": dataset.items[i].file, "source": dataset.items[i].source,
               "given": dataset.classes[labels[i]],
               "suggested": dataset.classes[int(probs[i].argmax())],
               "score": float(scores[i])} for i in ranked]
    result = {"data": name, "content_hash": dataset.content_hash, "folds": folds,
              "model": model, "epochs": epochs, "images": len(labels),
              "out_of_fold_acc": float((probs.argmax(1) == labels).mean()), "issues": issues}
    write_json_atomic(result_path(dataset), result)
    return result


def run_label_job(job: dict, progress: Callable[[int, int], None]) -> dict:
    """The import worker's runner for a `label-issues` job (core.analysis.label_jobs): the
    search with the job's settings, progress in epochs; returns the job's summary."""
    request = job["request"]
    options = {key: request[key] for key in ("folds", "model", "epochs", "device", "seed")
               if key in request}
    folds, epochs = options.get("folds", 5), options.get("epochs", FAST_EPOCHS)
    progress(0, folds * epochs)
    result = label_issues(job["name"], progress=progress, **options)
    return {"issues": len(result["issues"]), "images": result["images"],
            "out_of_fold_acc": result["out_of_fold_acc"]}


__all__ = ["label_issues", "out_of_fold_probabilities", "rank_label_issues", "run_label_job",
           "saved_label_issues", "stratified_folds"]
