"""Probabilities that mean what they say: one temperature fitted on the validation logits
(Guo et al., 2017, "On Calibration of Modern Neural Networks"), and the expected calibration
error and reliability bins that show whether it helped.

softmax(logits / T) keeps every prediction (the order of the classes does not change) and
only makes the confidences honest: T > 1 softens an over-confident model, T < 1 sharpens a
timid one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

ECE_BINS = 15
T_RANGE = (0.05, 20.0)  # a fitted temperature outside this says the fit went wrong


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature, in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    x = torch.as_tensor(np.asarray(logits, dtype=np.float64)) / temperature
    return float(F.cross_entropy(x, torch.as_tensor(np.asarray(labels, dtype=np.int64))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 100) -> float:
    """The temperature that minimises the NLL of `labels` (LBFGS on log T, so T stays
    positive). 1.0 when there is nothing to fit or the fit would not lower the NLL."""
    logits = np.asarray(logits, dtype=np.float64)
    if len(logits) == 0 or logits.shape[1] < 2:
        return 1.0
    x = torch.as_tensor(logits)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        return 1.0
    temperature = min(max(temperature, T_RANGE[0]), T_RANGE[1])
    return temperature if nll(logits, labels, temperature) <= nll(logits, labels) else 1.0


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Top-1 confidence against accuracy in `bins` equal-width bins of (0, 1] (a confidence
    on an edge goes to the bin below it). Empty bins have confidence and accuracy None."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64) if len(probs) else np.zeros(0)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    hit_sum = np.bincount(index, weights=correct, minlength=bins)
    mean = [None if n == 0 else float(s / n) for s, n in zip(conf_sum, count, strict=True)]
    accuracy = [None if n == 0 else float(s / n) for s, n in zip(hit_sum, count, strict=True)]
    return {"bins": bins, "edges": [i / bins for i in range(bins + 1)],
            "count": [int(n) for n in count], "confidence": mean, "accuracy": accuracy}


def ece_of_bins(table: dict) -> float | None:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| of bins."""
    total = sum(table["count"])
    if total == 0:
        return None
    return float(sum(n * abs(a - c) for n, a, c in
                     zip(table["count"], table["accuracy"], table["confidence"], strict=True)
                     if n) / total)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               bins: int = ECE_BINS) -> float | None:
    """ECE with `bins` equal-width bins (as torchmetrics' MulticlassCalibrationError, l1)."""
    return ece_of_bins(reliability_bins(probs, labels, bins))


def calibration_report(val_logits: np.ndarray, val_labels: np.ndarray,
                       test_logits: np.ndarray, test_labels: np.ndarray) -> dict:
    """Fit T on validation; ECE, NLL and reliability bins on the test split before and after
    (on validation when there is no test split; `split` says which)."""
    temperature = fit_temperature(val_logits, val_labels)
    logits, labels, split = test_logits, test_labels, "test"
    if len(logits) == 0:
        logits, labels, split = val_logits, val_labels, "val"
    before = reliability_bins(softmax(logits), labels)
    after = reliability_bins(softmax(logits, temperature), labels)
    measured = len(logits) > 0
    return {"temperature": temperature, "ece_before": ece_of_bins(before),
            "ece_after": ece_of_bins(after), "split": split, "bins": ECE_BINS,
            "nll_before": nll(logits, labels) if measured else None,
            "nll_after": nll(logits, labels, temperature) if measured else None,
            "reliability": {"before": before, "after": after}}
