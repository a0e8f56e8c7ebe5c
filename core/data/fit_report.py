"""What the import report says about training on the data: the flip decision (mirror test),
the resize mode from the aspect ratios, and class imbalance."""

from __future__ import annotations

from core.data.balance import imbalance
from core.data.cache import dataset_resize
from core.data.dataset import Dataset
from core.data.mirror import dataset_flip_decision


def data_fit_summary(dataset: Dataset) -> dict:
    """The keys `data import --json` adds: `flip` ({flip, reason, retention}), `resize`
    ({mode, reason}) and `imbalance` ({ratio, largest, smallest, counts, message} or None)."""
    decision = dataset_flip_decision(dataset)
    mode, reason = dataset_resize(dataset)
    return {"flip": {"flip": decision.flip, "reason": decision.reason,
                     "retention": decision.retention},
            "resize": {"mode": mode, "reason": reason},
            "imbalance": imbalance(dataset)}


def data_fit_lines(summary: dict) -> list[str]:
    """The import report's sentences for those keys."""
    lines = [summary[key]["reason"] for key in ("flip", "resize") if summary.get(key)]
    if summary.get("imbalance"):
        lines.append(summary["imbalance"]["message"])
    return lines
