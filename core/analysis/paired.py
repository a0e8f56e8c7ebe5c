"""Two runs on the same images, image by image: what B fixed and broke relative to A, and
whether the difference is real (McNemar's exact test), with each run's accuracy and its 95%
Wilson interval.

Per-image predictions come from the run folder's `predictions.npz` (saved after training,
core.training.after_fit); runs from before it are classified now, image by image, while
their dataset is unchanged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from core.data.dataset import DatasetError, load_dataset
from core.store import Store
from core.training.run_files import MODEL_CARD, PREDICTIONS
from core.workspace import runs_dir

ALPHA = 0.05  # a difference with p below this is called real
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
SPLITS = ("test", "val")


@dataclass
class Predictions:
    """One run's answers on one split: dataset item index, true and predicted class."""
    index: np.ndarray
    label: np.ndarray
    predicted: np.ndarray


def mcnemar_exact(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of `fixed` successes in
    fixed + broken trials with p = 1/2 (exact rational arithmetic; 1.0 with no discordant
    pair)."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(fixed, broken) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2 ** n)))


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def verdict(name_a: str, name_b: str, fixed: int, broken: int, p: float) -> tuple[str, str | None]:
    """(a sentence, "a" / "b" / None for the run that is better when the difference is real)."""
    counts = f"{fixed} fixed, {broken} broken, {format_p(p)}"
    if p >= ALPHA or fixed == broken:
        return f"The difference is within noise ({counts}).", None
    if fixed > broken:
        return f"{name_b} is better: {counts}.", "b"
    return f"{name_a} is better: {counts}.", "a"


def model_card_of(run_id: str) -> dict:
    path = runs_dir() / run_id / MODEL_CARD
    return json.loads(path.read_text()) if path.exists() else {}


def check_comparable(run_a: dict, run_b: dict, card_a: dict, card_b: dict) -> None:
    """ValueError unless both runs trained on the same dataset (name and content)."""
    if run_a["data"] != run_b["data"]:
        raise ValueError(f"Run {run_a['name']} used dataset {run_a['data']!r} and run "
                         f"{run_b['name']} used {run_b['data']!r}; image-by-image comparison "
                         "needs two runs on the same dataset and split.")
    hash_a, hash_b = card_a.get("content_hash"), card_b.get("content_hash")
    if hash_a and hash_b and hash_a != hash_b:
        raise ValueError(f"Runs {run_a['name']} and {run_b['name']} used different versions "
                         f"of dataset {run_a['data']!r} (content {hash_a[:12]} vs "
                         f"{hash_b[:12]}); compare runs trained on the same images.")
    if card_a.get("classes") and card_b.get("classes") and card_a["classes"] != card_b["classes"]:
        raise ValueError(f"Runs {run_a['name']} and {run_b['name']} have different classes.")


def load_predictions(run: dict, split: str, card: dict) -> Predictions:
    """The run's saved predictions on `split`, or ones made now (older runs)."""
    path = runs_dir() / run["run_id"] / PREDICTIONS
    if path.exists():
        with np.load(path) as saved:
            if f"{split}_index" in saved:
                return Predictions(saved[f"{split}_index"], saved[f"{split}_label"],
                                   saved[f"{split}_predicted"])
    return predictions_now(run, split, card)


def predictions_now(run: dict, split: str, card: dict) -> Predictions:
    """Classify the split's images with the run's best model (no saved predictions)."""
    from core.serving.infer import load_model  # torch

    try:
        dataset = load_dataset(run["data"])
    except (DatasetError, ValueError):
        raise ValueError(f"Run {run['name']} has no saved predictions and its dataset "
                         f"{run['data']!r} is gone; train it again to compare it.") from None
    if card.get("content_hash") and card["content_hash"] != dataset.content_hash:
        raise ValueError(f"Run {run['name']} has no saved predictions and its dataset changed "
                         "since it trained; train it again to compare it.")
    index = np.asarray(dataset.indices(split), dtype=np.int64)
    loaded = load_model(run["run_id"])
    classes = {name: i for i, name in enumerate(loaded.classes)}
    predicted = []
    for start in range(0, len(index), 256):
        images = [loaded.open(dataset.folder / dataset.items[i].file)
                  for i in index[start:start + 256]]
        predicted += [classes[top[0]["label"]] for top in loaded.top_k(images, 1)]
    labels = np.array([dataset.items[i].label for i in index], dtype=np.int64)
    return Predictions(index, labels, np.asarray(predicted, dtype=np.int64))


def run_accuracy(run: dict, hits: int, n: int) -> dict:
    low, high = wilson_interval(hits, n)
    return {"run_id": run["run_id"], "name": run["name"], "correct": hits, "images": n,
            "accuracy": hits / n if n else None, "ci95": [low, high]}


def compare_runs(ref_a: str, ref_b: str, split: str = "test", store: Store | None = None,
                 ) -> dict:
    """Image by image on `split`: {a, b (accuracy, ci95), split, images, counts, fixed,
    broken, both_wrong (lists of {index, file, label, a, b}), p_value, verdict, better}."""
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}.")
    store = store or Store()
    runs = []
    for ref in (ref_a, ref_b):
        run = store.get_run(ref)
        if run is None:
            raise ValueError(f"There is no run {ref!r}; see `python -m core runs list`.")
        runs.append(run)
    run_a, run_b = runs
    if run_a["run_id"] == run_b["run_id"]:
        raise ValueError("Give two different runs to compare.")
    card_a, card_b = model_card_of(run_a["run_id"]), model_card_of(run_b["run_id"])
    check_comparable(run_a, run_b, card_a, card_b)
    pred_a = load_predictions(run_a, split, card_a)
    pred_b = load_predictions(run_b, split, card_b)
    if not np.array_equal(pred_a.index, pred_b.index):
        raise ValueError(f"Runs {run_a['name']} and {run_b['name']} have different {split} "
                         "splits (the dataset was split again between them); compare runs "
                         "trained on the same split.")
    return paired_result(run_a, run_b, split, pred_a, pred_b, card_a.get("classes") or [])


def paired_result(run_a: dict, run_b: dict, split: str, pred_a: Predictions,
                  pred_b: Predictions, classes: list[str]) -> dict:
    right_a = pred_a.predicted == pred_a.label
    right_b = pred_b.predicted == pred_b.label
    files = dataset_files(run_a["data"], pred_a.index)

    def images(mask: np.ndarray) -> list[dict]:
        return [{"index": int(pred_a.index[i]), "file": files.get(int(pred_a.index[i])),
                 "label": name_of(classes, pred_a.label[i]),
                 "a": name_of(classes, pred_a.predicted[i]),
                 "b": name_of(classes, pred_b.predicted[i])} for i in np.flatnonzero(mask)]

    fixed, broken = images(~right_a & right_b), images(right_a & ~right_b)
    p_value = mcnemar_exact(len(fixed), len(broken))
    sentence, better = verdict(run_a["name"], run_b["name"], len(fixed), len(broken), p_value)
    n = len(right_a)
    return {"split": split, "images": n,
            "a": run_accuracy(run_a, int(right_a.sum()), n),
            "b": run_accuracy(run_b, int(right_b.sum()), n),
            "counts": {"fixed": len(fixed), "broken": len(broken),
                       "both_wrong": int((~right_a & ~right_b).sum()),
                       "both_right": int((right_a & right_b).sum())},
            "fixed": fixed, "broken": broken, "both_wrong": images(~right_a & ~right_b),
            "p_value": p_value, "verdict": sentence,
            "better": None if better is None else (run_a if better == "a" else run_b)["run_id"]}


def name_of(classes: list[str], index) -> str:
    index = int(index)
    return classes[index] if index < len(classes) else str(index)


def dataset_files(name: str, index: np.ndarray) -> dict[int, str]:
    """Item index → the image's path, for the gallery (empty when the dataset is gone)."""
    try:
        dataset = load_dataset(name)
    except (DatasetError, ValueError):
        return {}
    return {int(i): str(dataset.folder / dataset.items[int(i)].file) for i in index
            if int(i) < len(dataset.items)}
