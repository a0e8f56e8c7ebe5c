"""Error analysis: what a run gets wrong on its validation images, and a cleaned dataset version.

Predictions come from the run's best checkpoint on the same uint8 cache the run trained from,
so they match its validation metrics exactly. They are cached in the run folder as
`predictions_val.npz`, keyed by the checkpoint's modification time and the dataset's content
hash, so the page can ask again and again for free.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from core.data.build import DatasetBuilder
from core.data.cache import cache_path, load_cache, write_cache
from core.data.dataset import Dataset, DatasetError, load_dataset
from core.data.loader import to_model_input
from core.durable import replace_durably
from core.serving.infer import LoadedModel, ModelUnavailable, load_model
from core.store import Store
from core.training.run_files import weights_file
from core.workspace import runs_dir

CACHE_NAME = "predictions_val.npz"
PRIME_CACHE_MAX_BYTES = 1 << 30  # copy the parent's decoded cache into a new version up to 1 GiB
COLUMNS = ["index", "file", "true", "predicted", "true_id", "predicted_id", "prob_predicted",
           "prob_true", "loss", "correct"]


# Predictions --------------------------------------------------------------------------------

def validation_probabilities(run_ref: str, store: Store | None = None, batch_size: int = 256,
                             device: str = "cpu") -> tuple[Dataset, np.ndarray, np.ndarray]:
    """(dataset, val item indices, N×C softmax probabilities) of the run's best checkpoint."""
    store = store or Store()
    run = store.get_run(run_ref)
    if run is None:
        raise ModelUnavailable(f"There is no run {run_ref!r}.")
    folder = runs_dir() / run["run_id"]
    weights = weights_file(folder)
    if not weights.exists():
        raise ModelUnavailable(f"Run {run['name']} has no trained model yet ({run['status']}).")
    loaded = load_model(run["run_id"], store, device=device)
    dataset = load_dataset(loaded.card["data"])
    if loaded.card.get("content_hash") and loaded.card["content_hash"] != dataset.content_hash:
        raise DatasetError(f"Dataset {dataset.name} changed since run {run['name']} trained on "
                           "it, so its images no longer line up with the run's split.")
    tta_flip = bool(loaded.card.get("tta_flip", run["config"].get("tta_flip")))  # as tested
    key = f"{weights.stat().st_mtime_ns}:{dataset.content_hash}:{tta_flip}"
    cached = read_cached(folder / CACHE_NAME, key)
    if cached is not None:
        return dataset, *cached
    indices = np.array(dataset.indices("val"), dtype=np.int64)
    probs = predict_items(loaded, dataset, indices, batch_size, tta_flip)
    write_cached(folder / CACHE_NAME, key, indices, probs)
    return dataset, indices, probs


def write_cached(path: Path, key: str, indices: np.ndarray, probs: np.ndarray) -> None:
    """Temp file and rename: two pages asking at once never leave half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, key=np.array(key), indices=indices, probs=probs)
    replace_durably(tmp, path)


def predict_items(loaded: LoadedModel, dataset: Dataset, indices: np.ndarray, batch_size: int,
                  tta_flip: bool = False) -> np.ndarray:
    """Softmax probabilities for dataset items, from the run's own cache at its image size,
    averaging the logits with the mirror image's when the run was evaluated that way."""
    images = load_cache(dataset, loaded.card["image_size"],
                        mode=loaded.card.get("resize") or "crop")
    mean, std = torch.tensor(loaded.card["mean"]), torch.tensor(loaded.card["std"])
    probs = np.zeros((len(indices), len(loaded.classes)), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(indices), batch_size):
            block = np.ascontiguousarray(images[indices[start:start + batch_size]])
            x = to_model_input(torch.from_numpy(block).to(loaded.device), mean.to(loaded.device),
                               std.to(loaded.device))
            logits = loaded.model(x).float()
            if tta_flip:
                logits = (logits + loaded.model(x.flip(3)).float()) / 2
            probs[start:start + len(block)] = torch.softmax(logits, dim=1).cpu().numpy()
    return probs


def read_cached(path: Path, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as saved:
            if str(saved["key"]) == key:
                return saved["indices"], saved["probs"]
    except (OSError, ValueError, KeyError):  # a damaged cache is recomputed
        pass
    return None


def validation_predictions(run_ref: str, store: Store | None = None,
                           device: str = "cpu") -> pd.DataFrame:
    """One row per validation image: item index, file (relative to the dataset folder), true and
    predicted class (names, and ids), probability of each, cross-entropy loss, correct."""
    dataset, indices, probs = validation_probabilities(run_ref, store, device=device)
    return predictions_frame(dataset, indices, probs)


def predictions_frame(dataset: Dataset, indices: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    true = np.array([dataset.items[i].label for i in indices], dtype=np.int64)
    predicted = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    rows = np.arange(len(indices))
    prob_true = probs[rows, true].astype(np.float64)
    classes = np.array(dataset.classes, dtype=object)
    return pd.DataFrame({
        "index": indices, "file": [dataset.items[i].file for i in indices],
        "true": classes[true], "predicted": classes[predicted], "true_id": true,
        "predicted_id": predicted, "prob_predicted": probs[rows, predicted].astype(np.float64),
        "prob_true": prob_true, "loss": -np.log(np.clip(prob_true, 1e-12, None)),
        "correct": true == predicted,
    }, columns=COLUMNS)


def top_probabilities(run_ref: str, index: int, k: int = 5,
                      store: Store | None = None) -> list[dict]:
    """The k most likely classes [{label, prob}] for validation item `index` (from the cache)."""
    dataset, indices, probs = validation_probabilities(run_ref, store)
    where = np.flatnonzero(indices == index)
    if not len(where):
        raise ValueError(f"Item {index} is not in the validation split.")
    row = probs[where[0]]
    return [{"label": dataset.classes[i], "prob": float(row[i])} for i in np.argsort(-row)[:k]]


def confusion_from_predictions(frame: pd.DataFrame, num_classes: int) -> np.ndarray:
    """The validation confusion matrix (rows: true) whose cells `cell_images` opens."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (frame["true_id"].to_numpy(), frame["predicted_id"].to_numpy()), 1)
    return matrix


def cell_images(frame: pd.DataFrame, true: str | int, predicted: str | int) -> pd.DataFrame:
    """The images of one confusion cell (class names or ids), highest loss first."""
    true_column = "true_id" if isinstance(true, (int, np.integer)) else "true"
    predicted_column = "predicted_id" if isinstance(predicted, (int, np.integer)) else "predicted"
    rows = frame[(frame[true_column] == true) & (frame[predicted_column] == predicted)]
    return rows.sort_values("loss", ascending=False, kind="stable")


def confident_mistakes(frame: pd.DataFrame, n: int = 24) -> pd.DataFrame:
    """The n wrong predictions made with the highest probability."""
    wrong = frame[~frame["correct"]]
    return wrong.sort_values("prob_predicted", ascending=False, kind="stable").head(n)


def class_gallery(frame: pd.DataFrame, cls: str | int, n: int | None = None) -> pd.DataFrame:
    """The validation images of one true class, hardest (highest loss) first."""
    column = "true_id" if isinstance(cls, (int, np.integer)) else "true"
    rows = frame[frame[column] == cls].sort_values("loss", ascending=False, kind="stable")
    return rows if n is None else rows.head(n)


# A cleaned dataset version ------------------------------------------------------------------

def save_dataset_version(dataset_name: str, new_name: str, remove: set[int] | None = None,
                         relabel: dict[int, str] | None = None,
                         store: Store | None = None) -> Dataset:
    """Write a NEW dataset `new_name` from `dataset_name` without the `remove` item indices and
    with `relabel` (item index → class name) applied; every item keeps its split. The original
    is untouched. Records the new dataset in the store and returns it."""
    source = load_dataset(dataset_name)
    remove, relabel = set(remove or ()), dict(relabel or {})
    check_edits(source, remove, relabel)
    kept = [i for i in range(len(source.items)) if i not in remove]
    labels = {i: source.classes.index(relabel[i]) if i in relabel else source.items[i].label
              for i in kept}
    check_version(source, kept, labels)
    # every item is added with its split pinned: nothing is re-split, so a run on the new
    # version is validated on (what is left of) the same images
    builder = DatasetBuilder(new_name, source.classes,
                             origin=f"version of {source.name} ({len(remove)} removed, "
                                    f"{len(relabel)} relabelled)")
    try:
        for i in kept:
            item = source.items[i]
            with Image.open(source.folder / item.file) as image:
                image.load()
                builder.add(image, labels[i], item.source or f"{source.name}:{i}",
                            split=item.split)
    except BaseException:
        builder.abort()
        raise
    dataset = builder.finish(seed=source.seed)
    prime_caches(source, dataset, kept)
    (store or Store()).record_dataset(dataset.summary())
    return dataset


def check_edits(source: Dataset, remove: set[int], relabel: dict[int, str]) -> None:
    n = len(source.items)
    outside = sorted(i for i in (*remove, *relabel) if not 0 <= i < n)
    if outside:
        raise DatasetError(f"Items {outside[:5]} are not in dataset {source.name} "
                           f"(it has {n} items).")
    unknown = sorted({cls for cls in relabel.values() if cls not in source.classes})
    if unknown:
        raise DatasetError(f"Unknown classes {unknown}; relabel to one of "
                           f"{', '.join(source.classes)}.")


def check_version(source: Dataset, kept: list[int], labels: dict[int, int]) -> None:
    trained = {labels[i] for i in kept if source.items[i].split == "train"}
    if len(trained) < 2:
        raise DatasetError("The new version would have fewer than two classes with training "
                           "images; remove fewer images.")
    if not any(source.items[i].split == "val" for i in kept):
        raise DatasetError("The new version would have no validation images; remove fewer.")


def prime_caches(source: Dataset, dataset: Dataset, kept: list[int]) -> None:
    """Copy the parent's decoded arrays (same pixels, fewer rows) so the first run on the new
    version does not decode every image again."""
    if source.channels != dataset.channels:
        return
    folder = source.folder / "cache"
    for path in folder.glob(f"*px-{source.channels}ch.npy") if folder.exists() else []:
        size = int(path.name.split("px-")[0])
        if path != cache_path(source, size) or path.stat().st_size > PRIME_CACHE_MAX_BYTES:
            continue
        write_cache(dataset, size, np.load(path, mmap_mode="r")[kept])
