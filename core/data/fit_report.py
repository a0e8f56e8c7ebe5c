"""What the import report says about training on the data: the flip decision (mirror test)."""

from __future__ import annotations

from core.data.dataset import Dataset
from core.data.mirror import dataset_flip_decision


def data_fit_summary(dataset: Dataset) -> dict:
    """The keys `data import --json` adds: `flip` ({flip, reason, retention})."""
    decision = dataset_flip_decision(dataset)
    return {"flip": {"flip": decision.flip, "reason": decision.reason,
                     "retention": decision.retention}}


def data_fit_lines(summary: dict) -> list[str]:
    """The import report's sentences for those keys."""
    return [summary["flip"]["reason"]] if "flip" in summary else []
