"""A data map: a trained run's penultimate-layer features of one split's images (what its last
linear layer reads, captured as the kNN unknown detector does: core.training.outputs
.features_of), projected to 2-D by PCA or t-SNE (scikit-learn), with each image's given and
predicted label. Clusters, outliers and mislabelled images show up as points among the
wrong colour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from core.data.cache import load_cache
from core.data.dataset import Dataset, DatasetError, load_dataset
from core.data.loader import to_model_input
from core.serving.infer import LoadedModel, ModelUnavailable, load_model
from core.store import Store
from core.training.outputs import features_of
from core.training.unknown import normalise

METHODS = ("pca", "tsne")
COLUMNS = ["index", "file", "x", "y", "given", "predicted", "correct", "prob_predicted"]


def project(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """N×2 coordinates of N feature rows (L2-normalised first, as the kNN detector compares
    them); the same rows give the same map."""
    if method not in METHODS:
        raise ValueError(f"Unknown projection {method!r}; choose one of {', '.join(METHODS)}.")
    rows = np.asarray(features, dtype=np.float32)
    rows = normalise(rows.reshape(len(rows), -1)) if len(rows) else np.zeros((0, 2), np.float32)
    if len(rows) < 3 or rows.shape[1] < 2:  # too few to project: on a line
        out = np.zeros((len(rows), 2), dtype=np.float32)
        out[:, 0] = rows[:, 0] if rows.shape[1] else 0
        return out
    if method == "pca":
        coords = PCA(n_components=2, svd_solver="full").fit_transform(rows.astype(np.float64))
        # a principal axis' sign is arbitrary: fix it so the map never flips between versions
        flip = np.sign(coords[np.abs(coords).argmax(axis=0), [0, 1]])
        coords *= np.where(flip == 0, 1, flip)
    else:
        coords = TSNE(n_components=2, init="pca", random_state=seed,
                      perplexity=min(30.0, (len(rows) - 1) / 3)).fit_transform(rows)
    return coords.astype(np.float32)


def split_features(loaded: LoadedModel, dataset: Dataset, indices: np.ndarray,
                   batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(N×D penultimate features, N×K softmax probabilities) of these items, from the run's own
    cache at its image size and resize mode."""
    images = load_cache(dataset, loaded.card["image_size"],
                        mode=loaded.card.get("resize") or "crop")
    mean = torch.tensor(loaded.card["mean"], device=loaded.device)
    std = torch.tensor(loaded.card["std"], device=loaded.device)
    feats, probs = [], []
    with torch.inference_mode(), features_of(loaded.model) as captured:
        for start in range(0, len(indices), batch_size):
            block = np.ascontiguousarray(images[indices[start:start + batch_size]])
            x = to_model_input(torch.from_numpy(block).to(loaded.device), mean, std)
            probs.append(torch.softmax(loaded.model(x).float(), dim=1).cpu().numpy())
            if not captured:
                raise ModelUnavailable("This run's network has no final linear layer, so it "
                                       "has no penultimate features to map.")
            feats.append(captured.pop().cpu().numpy())
            captured.clear()
    if not feats:
        return np.zeros((0, 0), np.float32), np.zeros((0, len(loaded.classes)), np.float32)
    return np.concatenate(feats), np.concatenate(probs)


def map_split(dataset: Dataset, split: str) -> tuple[str, np.ndarray]:
    """The split to map: the one asked for, else validation when it is empty."""
    for name in (split, "val"):
        indices = np.array(dataset.indices(name), dtype=np.int64)
        if len(indices):
            return name, indices
    raise DatasetError(f"Dataset {dataset.name} has no {split} or validation images to map.")


def data_map(run_ref: str, split: str = "test", method: str = "pca", *,
             store: Store | None = None, device: str = "cpu", seed: int = 0) -> pd.DataFrame:
    """One row per image of the split (validation if it has none): item index, file, x, y,
    given and predicted class, correct, p(predicted). `attrs["split"]` names the split."""
    loaded = load_model(run_ref, store or Store(), device=device)
    dataset = load_dataset(loaded.card["data"])
    if loaded.card.get("content_hash") and loaded.card["content_hash"] != dataset.content_hash:
        raise DatasetError(f"Dataset {dataset.name} changed since this run trained on it, so "
                           "its images no longer line up with the run's split.")
    split, indices = map_split(dataset, split)
    features, probs = split_features(loaded, dataset, indices)
    coords = project(features, method, seed)
    classes = np.array(dataset.classes, dtype=object)
    given = np.array([dataset.items[i].label for i in indices], dtype=np.int64)
    predicted = probs.argmax(axis=1)
    frame = pd.DataFrame({
        "index": indices, "file": [dataset.items[i].file for i in indices],
        "x": coords[:, 0], "y": coords[:, 1], "given": classes[given],
        "predicted": classes[predicted], "correct": given == predicted,
        "prob_predicted": probs[np.arange(len(indices)), predicted].astype(np.float64),
    }, columns=COLUMNS)
    frame.attrs["split"] = split
    return frame
