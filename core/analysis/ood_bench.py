"""`bench ood`: how well each unknown-input score tells real out-of-distribution images from
the model's own test images, at the threshold the run set on its validation split.

The default trains a model on one built-in dataset and shows it the other's test images:
scikit-learn's digits against Fashion-MNIST, both ways. Every image goes the product's way
(decoded, fitted to the model's size and channels, `LoadedModel.outputs`). Per candidate:
the share of OOD images flagged unknown, the share of in-distribution test images kept, and
the AUROC of the score (threshold-free).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.config import TrainConfig
from core.data.catalog import add_demo
from core.data.dataset import Dataset, DatasetError, load_dataset
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.serving.infer import LoadedModel, load_model
from core.store import Store
from core.training.unknown import CANDIDATES, candidate_scores

PAIRS = (("digits", "fashion-mnist"), ("fashion-mnist", "digits"))
DEMO_SUBSET = {"fashion-mnist": {"per_class": 600, "test_per_class": 100}, "digits": {}}
EPOCHS = {"digits": 30, "fashion-mnist": 5}  # each reaches a usable accuracy on a CPU
OOD_LIMIT = 1000  # OOD images scored per pair
BATCH = 256


def bench_dataset(kind: str) -> Dataset:
    """The built-in `kind` as dataset `bench-<kind>` (a subset of Fashion-MNIST), made once."""
    name = f"bench-{kind}"
    try:
        return load_dataset(name)
    except (DatasetError, ValueError):
        return add_demo(kind, name, seed=0, **DEMO_SUBSET[kind])


def split_images(dataset: Dataset, split: str, limit: int | None = None) -> list[Image.Image]:
    index = dataset.indices(split)[:limit]
    images = []
    for i in index:
        with Image.open(dataset.folder / dataset.items[i].file) as image:
            images.append(image.copy())
    return images


def scores_of(loaded: LoadedModel, images: list[Image.Image]) -> dict[str, np.ndarray]:
    """Every candidate's scores for the images, in batches."""
    parts: dict[str, list[np.ndarray]] = {}
    bank = loaded.detector.bank if loaded.detector is not None else None
    if bank is None and (loaded.card.get("unknown") or {}).get("bank"):
        from core.workspace import runs_dir  # the bank even when the run uses another method

        bank = np.load(runs_dir() / loaded.run_id / loaded.card["unknown"]["bank"]) \
            .astype(np.float32)
    for start in range(0, len(images), BATCH):
        logits, features = loaded.outputs(images[start:start + BATCH], features=True)
        for name, values in candidate_scores(logits, loaded.temperature, features, bank).items():
            parts.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in parts.items()}


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an in-distribution image > score of an OOD image), ties counting half."""
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.ones(len(inside)), np.zeros(len(outside))]
    return float(roc_auc_score(truth, np.r_[inside, outside]))


def evaluate_run(run_id: str, ood: Dataset, store: Store | None = None,
                 limit: int = OOD_LIMIT) -> list[dict]:
    """One row per candidate: the run's own test images against `ood`'s test images."""
    store = store or Store()
    loaded = load_model(run_id, store)
    rule = loaded.card.get("unknown")
    if not rule:
        raise ValueError("This run has no unknown-input thresholds (trained before them); "
                         "train it again.")
    run = store.get_run(loaded.run_id)
    inside = scores_of(loaded, split_images(load_dataset(loaded.card["data"]), "test"))
    outside = scores_of(loaded, split_images(ood, "test" if ood.indices("test") else "train",
                                             limit))
    rows = []
    for name in CANDIDATES:
        if name not in inside or name not in rule["thresholds"]:
            continue
        threshold = rule["thresholds"][name]
        rows.append({"trained on": loaded.card["data"], "OOD images": ood.name,
                     "score": name + (" (in use)" if name == rule["method"] else ""),
                     "OOD flagged": float((outside[name] < threshold).mean()),
                     "test kept": float((inside[name] >= threshold).mean()),
                     "AUROC": auroc(inside[name], outside[name]),
                     "test images": len(inside[name]), "OOD count": len(outside[name]),
                     "test acc": run.get("test_acc")})
    return rows


def ood_benchmark(settings: dict, pairs=PAIRS, store: Store | None = None) -> list[dict]:
    """Train on each pair's first dataset (tiny-cnn and EPOCHS unless `settings` say
    otherwise), then score the second dataset's images against the first's test split."""
    store = store or Store()
    rows = []
    for inside, outside in pairs:
        dataset, ood = bench_dataset(inside), bench_dataset(outside)
        config = TrainConfig(**({"model": "tiny-cnn", "epochs": EPOCHS[inside]} | settings
                                | {"data": dataset.name, "name": f"bench-ood-{inside}"}))
        run_id = new_run(config, store, status="running")
        result = execute_run(run_id, store)
        if result["status"] != "completed":
            raise ValueError(f"Training on {inside} failed: {result.get('error')}")
        calibration = result.get("calibration") or {}
        for row in evaluate_run(run_id, ood, store):
            rows.append(row | {"ECE before": calibration.get("ece_before"),
                               "ECE after": calibration.get("ece_after"),
                               "T": calibration.get("temperature")})
    return rows


