""""None of the classes I know": a score per image that is high for images like the training
data and low for anything else, and a threshold below which the answer is "unknown".

Candidates (every score: higher = more like the training data):
    msp     the largest softmax probability after the run's temperature (Hendrycks &
            Gimpel, 2017)
    energy  T·logsumexp(logits / T) with T = 1, the negative free energy (Liu et al., 2020)
    knn     minus the distance from the image's L2-normalised penultimate features to the
            k-th nearest of a bank of training images' (Sun et al., 2022)

Each run keeps the threshold of every candidate: the score that keeps KEEP of its validation
images answered. Which candidate a run uses is DEFAULT_METHOD, chosen by
`python -m core bench ood` on real out-of-distribution images (bench/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.training.calibration import softmax

CANDIDATES = ("msp", "energy", "knn")
DEFAULT_METHOD = "knn"  # best on real OOD images in `bench ood` (bench/RESULTS.md)
FALLBACK_METHOD = "energy"  # when a run has no feature bank (no linear head to read)
KEEP = 0.95  # the share of validation images the threshold keeps answered
KNN_K = 5
BANK_SIZE = 2000  # training images whose features a run keeps for the kNN score
ENERGY_T = 1.0


def msp_score(logits: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(logits, temperature).max(axis=1)


def energy_score(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / ENERGY_T
    top = z.max(axis=1, keepdims=True)
    return ENERGY_T * (top[:, 0] + np.log(np.exp(z - top).sum(axis=1)))


def normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); an all-zero row stays zero."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def knn_score(features: np.ndarray, bank: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Minus the distance to the k-th nearest bank row (both sides L2-normalised)."""
    queries = normalise(features)
    bank = np.asarray(bank, dtype=np.float32)
    k = max(1, min(k, len(bank)))
    # |q - b|² = 2 - 2 q·b for unit vectors; in chunks so memory stays small
    scores = np.empty(len(queries), dtype=np.float64)
    for start in range(0, len(queries), 1024):
        sims = queries[start:start + 1024] @ bank.T
        kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
        scores[start:start + 1024] = -np.sqrt(np.maximum(2 - 2 * kth, 0))
    return scores


def candidate_scores(logits: np.ndarray, temperature: float, features: np.ndarray | None,
                     bank: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every candidate's scores; knn only when features and a bank are given."""
    scores = {"msp": msp_score(logits, temperature), "energy": energy_score(logits)}
    if features is not None and bank is not None and len(bank):
        scores["knn"] = knn_score(features, bank)
    return scores


def threshold_keeping(scores: np.ndarray, keep: float = KEEP) -> float:
    """A threshold t with at least `keep` of `scores` >= t (answered) and no more than needs
    be: halfway between the lowest score kept and the highest one left out, so that an image
    on the edge does not change sides with the rounding of a recomputed score."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    cut = int(np.floor((1 - keep) * len(ordered)))
    lowest_kept = ordered[cut]
    below = ordered[:cut][ordered[:cut] < lowest_kept]
    if len(below):
        return float((lowest_kept + below[-1]) / 2)
    return float(lowest_kept - 1e-6 * (1 + abs(lowest_kept)))


def answered_share(scores: np.ndarray, threshold: float) -> float | None:
    scores = np.asarray(scores)
    return float((scores >= threshold).mean()) if len(scores) else None


def choose_method(available: list[str]) -> str:
    return DEFAULT_METHOD if DEFAULT_METHOD in available else FALLBACK_METHOD


def detector_report(val_scores: dict[str, np.ndarray],
                    test_scores: dict[str, np.ndarray]) -> dict | None:
    """The run's detector: per candidate the validation threshold and the shares of validation
    and test images it answers; `method` and `threshold` are the ones in use."""
    if not val_scores or not len(next(iter(val_scores.values()))):
        return None
    candidates = {}
    for name, scores in val_scores.items():
        threshold = threshold_keeping(scores)
        candidates[name] = {"threshold": threshold,
                            "val_answered": answered_share(scores, threshold),
                            "test_answered": answered_share(test_scores.get(name, []),
                                                            threshold)}
    method = choose_method(list(candidates))
    return {"method": method, "threshold": candidates[method]["threshold"], "keep": KEEP,
            "knn_k": KNN_K, "candidates": candidates}


@dataclass
class Detector:
    """A run's unknown-input rule, as model.json records it."""
    method: str
    threshold: float
    temperature: float = 1.0
    bank: np.ndarray | None = None  # normalised training features (knn)

    @property
    def needs_features(self) -> bool:
        return self.method == "knn"

    def scores(self, logits: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        if self.method == "msp":
            return msp_score(logits, self.temperature)
        if self.method == "energy":
            return energy_score(logits)
        if features is None or self.bank is None:
            raise ValueError("The kNN detector needs the penultimate features and the bank.")
        return knn_score(features, self.bank)

    def unknown(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) < self.threshold
