"""What the import report says about training on the data: the flip decision (mirror test),
the resize mode from the aspect ratios, and class imbalance."""

from __future__ import annotations

from core.data.balance import imbalance
from core.data.cache import dataset_resize, default_image_size
from core.data.dataset import Dataset
from core.data.mirror import dataset_flip_decision
from core.data.shift import dataset_shift_decision


def data_fit_summary(dataset: Dataset) -> dict:
    """The keys `data import --json` adds: `flip` ({flip, reason, retention}), `shift`
    ({pad, reason, registration}), `resize` ({mode, reason}) and `imbalance` ({ratio,
    largest, smallest, counts, message} or None)."""
    decision = dataset_flip_decision(dataset)
    shift = dataset_shift_decision(dataset, default_image_size(dataset))
    mode, reason = dataset_resize(dataset)
    return {"flip": {"flip": decision.flip, "reason": decision.reason,
                     "retention": decision.retention},
            "shift": shift.to_dict(),
            "resize": {"mode": mode, "reason": reason},
            "imbalance": imbalance(dataset)}


def data_fit_lines(summary: dict) -> list[str]:
    """The import report's sentences for those keys."""
    lines = [summary[key]["reason"] for key in ("flip", "shift", "resize") if summary.get(key)]
    if summary.get("imbalance"):
        lines.append(summary["imbalance"]["message"])
    return lines
