"""`model.json` in a run folder: what inference needs to rebuild the model and preprocess
exactly as validation did (classes, channels, image size, normalisation, the dataset's hash).
Plain JSON, so reading it needs no torch."""

from __future__ import annotations

import json
from pathlib import Path

from core.config import TrainConfig
from core.data.dataset import Dataset
from core.durable import write_json_atomic
from core.training.run_files import MODEL_CARD


def write_model_card(run_dir: Path, config: TrainConfig, dataset: Dataset, size: int,
                     mean: list[float], std: list[float], data_fit: dict | None = None) -> None:
    """What inference needs to rebuild the model and preprocess exactly as validation did.
    `data_fit`: the choices made from the data (flip and its reason, flip TTA, resize mode)."""
    write_json_atomic(run_dir / MODEL_CARD, (data_fit or {}) | {
        "model": config.model, "classes": dataset.classes, "in_chans": dataset.channels,
        "image_size": size, "mean": mean, "std": std, "data": dataset.name,
        "content_hash": dataset.content_hash, "spec": config.extra.get("spec"),
        "splits": dataset.split_counts(), "split_seed": dataset.seed,
        "batch_size": config.batch_size, "lr": config.lr,
    })


def read_model_card(run_dir: Path) -> dict:
    return json.loads((run_dir / MODEL_CARD).read_text())
