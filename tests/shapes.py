"""The training config most tests train: tiny-cnn on the built-in `shapes` demo, on the CPU
(240 training images → 3 steps an epoch at batch 64)."""

from __future__ import annotations

from core.config import TrainConfig


def shapes_config(**overrides) -> TrainConfig:
    settings = {"data": "shapes", "model": "tiny-cnn", "epochs": 2, "batch_size": 64,
                "device": "cpu", "seed": 0}
    return TrainConfig(**(settings | overrides))
