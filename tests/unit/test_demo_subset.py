"""Built-in datasets cut to N images per class: seeded, stratified, test set whole by default."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from core.data.dataset import DatasetError
from core.data.demo import FASHION_MNIST_DIR, create_demo, stratified_subset


def test_stratified_subset_takes_n_per_class_seeded_and_in_order() -> None:
    labels = np.array([0, 1, 2] * 10 + [2] * 5)
    index = stratified_subset(labels, 4, seed=3)
    assert Counter(labels[index].tolist()) == {0: 4, 1: 4, 2: 4}
    assert list(index) == sorted(index)
    assert np.array_equal(index, stratified_subset(labels, 4, seed=3))
    assert not np.array_equal(index, stratified_subset(labels, 4, seed=4))
    with pytest.raises(DatasetError):
        stratified_subset(labels, 0, seed=0)


def test_a_demo_without_an_official_test_set_is_cut_before_splitting(studio_home) -> None:
    dataset = create_demo("shapes", "few-shapes", per_class=20, seed=1)
    counts = Counter(item.label for item in dataset.items)
    assert counts == {0: 20, 1: 20, 2: 20}
    assert sum(dataset.split_counts().values()) == 60


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason="needs dataset-fashion-mnist")
def test_fashion_mnist_per_class_keeps_the_official_test_set_unless_asked(studio_home) -> None:
    dataset = create_demo("fashion-mnist", "fm-small", per_class=30, test_per_class=5)
    splits = dataset.split_counts()
    assert splits["train"] + splits["val"] == 300
    assert splits["test"] == 50
    assert Counter(item.label for item in dataset.items if item.split == "test") == {
        label: 5 for label in range(10)}
