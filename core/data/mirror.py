"""Whether a horizontal flip keeps an image's label, decided from the data.

The test (measured on every real dataset here: bench/RESULTS.md, "Defaults against the seed
recipe; flip and shift decided from the data"): shrink a stratified sample of training images
to 16×16 grayscale, hold half as references, and classify the other half by their 5 nearest
references, once as they are and once mirrored. If a mirrored image is the same thing, it still
finds its own class about as often as the original does; if mirroring changes what it is (a 3,
a 7, a road sign's arrow), the mirrored images land on other classes or anywhere. The chance-
corrected ratio of the two hit rates (the *retention*) measured 0.23–0.34 on scikit-learn's
digits (mirror-sensitive), 0.61–0.77 on Fashion-MNIST and 0.92–1.08 on the shapes demo (mirror-
safe); flips stay on from RETENTION_CUTOFF = 0.5 up, the midpoint. When the pixel probe itself
cannot tell the classes apart (unaligned photos), it says nothing about mirrors, and flips stay
on: natural photos are mirror-safe unless they carry text.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from core.data.dataset import Dataset
from core.data.transforms import fit_image
from core.durable import write_json_atomic

PROBE_PX = 16  # the probe's images: small enough to be fast, large enough to show a stroke
PROBE_IMAGES = 2000  # at most this many training images, stratified
NEIGHBOURS = 5
RETENTION_CUTOFF = 0.5
MIN_PROBE_GAIN = 0.15  # below this over chance, the pixel probe cannot judge the classes
DECISION_FILE = "flip-decision.json"  # in the dataset's cache folder (derived data)
FLIP_CHOICES = ("auto", "on", "off")


@dataclass
class FlipDecision:
    flip: bool
    reason: str  # one sentence for the Datasets and Train pages
    retention: float | None = None  # chance-corrected mirrored/original hit rate
    probe_acc: float | None = None  # the probe's hit rate on the originals
    mirrored_acc: float | None = None  # ... on their mirror images
    per_class: dict = field(default_factory=dict)  # class → {kept, looks_like}
    content_hash: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def probe_features(images: np.ndarray) -> np.ndarray:
    """uint8 N×H×W×C → N×(PROBE_PX²) grayscale, each image standardised (contrast-free)."""
    gray = images.astype(np.float32).mean(axis=3) if images.ndim == 4 else images.astype(
        np.float32)
    if gray.shape[1:] != (PROBE_PX, PROBE_PX):
        gray = np.stack([np.asarray(Image.fromarray(g).resize(
            (PROBE_PX, PROBE_PX), Image.Resampling.BILINEAR)) for g in gray])
    flat = gray.reshape(len(gray), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / (flat.std(axis=1, keepdims=True) + 1e-6)


def nearest_labels(reference: np.ndarray, labels: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The majority label of each query's NEIGHBOURS nearest references (squared distance)."""
    distance = (query ** 2).sum(1)[:, None] - 2 * query @ reference.T + (reference ** 2).sum(1)
    nearest = np.argsort(distance, axis=1)[:, :NEIGHBOURS]
    votes = labels[nearest]
    return np.array([np.bincount(row).argmax() for row in votes])


def stratified_sample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Up to `limit` indices with every class in its own share, shuffled with `seed`."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    if len(order) <= limit:
        return order
    share = limit / len(labels)
    picks = [order[labels[order] == label][:max(2, round(share * (labels == label).sum()))]
             for label in np.unique(labels)]
    return rng.permutation(np.concatenate(picks))


def decide_flip(images: np.ndarray, labels: np.ndarray, classes: list[str],
                seed: int = 0) -> FlipDecision:
    """The flip decision for uint8 N×H×W(×C) images with integer labels."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(np.unique(labels)) < 2 or len(labels) < 20:
        return FlipDecision(True, "flips on: too few images to test mirror symmetry; "
                                  "most photos are mirror-safe")
    index = stratified_sample(labels, PROBE_IMAGES, seed)
    images, labels = np.asarray(images)[index], labels[index]
    half = len(labels) // 2
    plain = probe_features(images)
    mirrored = probe_features(images[:, :, ::-1])
    ref, ref_labels, query_labels = plain[:half], labels[:half], labels[half:]
    found = nearest_labels(ref, ref_labels, plain[half:])
    found_mirrored = nearest_labels(ref, ref_labels, mirrored[half:])
    chance = 1 / len(classes)
    probe_acc = float((found == query_labels).mean())
    mirrored_acc = float((found_mirrored == query_labels).mean())
    per_class = class_report(found, found_mirrored, query_labels, classes)
    if probe_acc - chance < MIN_PROBE_GAIN:
        return FlipDecision(True, "flips on: the images are too varied for a pixel test of "
                                  "mirror symmetry; photos are usually mirror-safe",
                            None, probe_acc, mirrored_acc, per_class)
    retention = (mirrored_acc - chance) / (probe_acc - chance)
    worst = min(per_class, key=lambda name: per_class[name]["kept"])
    if retention >= RETENTION_CUTOFF:
        reason = (f"flips on: mirrored images keep their class ({mirrored_acc:.0%} found by a "
                  f"nearest-neighbour probe, {probe_acc:.0%} unmirrored)")
        return FlipDecision(True, reason, retention, probe_acc, mirrored_acc, per_class)
    looks_like = per_class[worst]["looks_like"]
    where = (f"look like `{looks_like}`" if looks_like else "look unlike any class")
    reason = (f"flips off: mirrored images of `{worst}` {where} (mirrored images keep their "
              f"class {mirrored_acc:.0%} of the time, unmirrored {probe_acc:.0%})")
    return FlipDecision(False, reason, retention, probe_acc, mirrored_acc, per_class)


def class_report(found: np.ndarray, found_mirrored: np.ndarray, labels: np.ndarray,
                 classes: list[str]) -> dict:
    """Per class: the share of its mirrored images still found as it, and the one other class
    that takes most of them (when it takes at least half), else None."""
    report = {}
    for label, name in enumerate(classes):
        mask = labels == label
        if not mask.any():
            continue
        counts = np.bincount(found_mirrored[mask], minlength=len(classes))
        kept = counts[label] / mask.sum()
        counts[label] = 0
        other = int(counts.argmax())
        looks_like = classes[other] if counts[other] >= 0.5 * mask.sum() else None
        report[name] = {"kept": float(kept), "looks_like": looks_like}
    return report


def decision_path(dataset: Dataset):
    return dataset.folder / "cache" / DECISION_FILE


def dataset_flip_decision(dataset: Dataset, seed: int = 0) -> FlipDecision:
    """The dataset's flip decision, computed once from a stratified sample of its training
    images (decoded at the probe's size) and kept beside its cache."""
    path = decision_path(dataset)
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            if saved.get("content_hash") == dataset.content_hash:
                return FlipDecision(**saved)
        except (OSError, ValueError, TypeError):
            pass  # a damaged file is recomputed
    train = np.array(dataset.indices("train") or range(len(dataset.items)), dtype=np.int64)
    labels = np.array([dataset.items[i].label for i in train], dtype=np.int64)
    picked = train[stratified_sample(labels, PROBE_IMAGES, seed)]
    images = np.stack([decode_small(dataset, int(i)) for i in picked]) if len(picked) else \
        np.zeros((0, PROBE_PX, PROBE_PX, 1), np.uint8)
    decision = decide_flip(images, np.array([dataset.items[i].label for i in picked]),
                           dataset.classes, seed)
    decision.content_hash = dataset.content_hash
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, decision.to_dict())
    except OSError:
        pass  # a read-only dataset folder: the decision is recomputed next time
    return decision


def decode_small(dataset: Dataset, index: int) -> np.ndarray:
    with Image.open(dataset.folder / dataset.items[index].file) as image:
        return fit_image(image, PROBE_PX, 1)


def resolve_flip(setting: str | bool, dataset: Dataset) -> tuple[bool, str]:
    """The flip a run trains with and why: `on`/`off` as given, `auto` from the data."""
    if isinstance(setting, bool):
        setting = "on" if setting else "off"
    if setting == "on":
        return True, "flips on: set by hand"
    if setting == "off":
        return False, "flips off: set by hand"
    decision = dataset_flip_decision(dataset)
    return decision.flip, decision.reason
