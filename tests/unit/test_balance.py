"""Class imbalance: the warning, the class weights and the sampler, and what a run reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_sets import imbalanced_dataset

from core.config import TrainConfig
from core.data.balance import balanced_accuracy, class_weights, imbalance, sample_weights
from core.data.dataset import load_dataset
from core.data.loader import DeviceSplit
from core.training.loop import fit


def test_an_imbalanced_dataset_is_named_with_its_largest_and_smallest_class(
        studio_home: Path) -> None:
    imbalanced_dataset()
    found = imbalance(load_dataset("skewed"))
    assert found is not None and found["ratio"] == pytest.approx(10, rel=0.2)
    assert "`big`" in found["message"] and "`small`" in found["message"]
    assert "balance weights" in found["message"]


def test_a_balanced_dataset_gets_no_warning(studio_home: Path) -> None:
    imbalanced_dataset("even", big=40, small=30)
    assert imbalance(load_dataset("even")) is None


def test_class_weights_make_every_class_count_the_same() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    weights = class_weights(labels, 3)
    assert weights[2] == 0  # a class with no images
    assert weights[0] * 90 == pytest.approx(weights[1] * 10)


def test_the_sampler_draws_every_class_about_equally_often() -> None:
    labels = np.array([0] * 900 + [1] * 100)
    split = DeviceSplit(np.zeros((1000, 2, 2, 1), np.uint8), labels, torch.device("cpu"))
    split.sample_weights = torch.from_numpy(sample_weights(labels, 2))
    drawn = torch.cat([y for _, y in split.batches(
        100, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert len(drawn) == 1000 and 0.4 < drawn.float().mean().item() < 0.6


def test_balanced_accuracy_is_the_mean_recall() -> None:
    assert balanced_accuracy(np.array([[90, 0], [8, 2]])) == pytest.approx((1 + 0.2) / 2)


def train_skewed(balance: str, run_dir: Path) -> dict:
    config = TrainConfig(data="skewed", model="tiny-cnn", epochs=3, batch_size=32, device="cpu",
                         flip="off", pad_crop=0, balance=balance)
    return fit(config, run_dir)


def small_recall(result: dict) -> float:
    return next(row["accuracy"] for row in result["per_class"] if row["class"] == "small")


def test_weights_and_sampler_change_the_per_class_recall(studio_home: Path,
                                                         tmp_path: Path) -> None:
    imbalanced_dataset()
    plain = train_skewed("none", tmp_path / "none")
    weighted = train_skewed("weights", tmp_path / "weights")
    sampled = train_skewed("sampler", tmp_path / "sampler")
    assert plain["imbalance_ratio"] > 3 and plain["balance"] == "none"
    assert plain["balanced_acc"] is not None
    assert small_recall(weighted) > small_recall(plain)
    assert small_recall(sampled) > small_recall(plain)


def test_the_import_report_says_the_classes_are_imbalanced(studio_home: Path) -> None:
    from core.data.fit_report import data_fit_lines, data_fit_summary

    imbalanced_dataset()
    summary = data_fit_summary(load_dataset("skewed"))
    assert summary["imbalance"]["largest"] == "big" and summary["resize"]["mode"] == "crop"
    assert any(line.startswith("classes are imbalanced") for line in data_fit_lines(summary))
