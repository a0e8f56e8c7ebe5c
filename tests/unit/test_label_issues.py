"""Likely label errors: k-fold predictions ranked by cleanlab put planted errors on top, and a
cleaned version is a new dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from core.analysis.error_analysis import save_dataset_version
from core.analysis.label_issues import (
    rank_label_issues,
    saved_label_issues,
    stratified_folds,
)
from core.data.build import DatasetBuilder
from core.data.dataset import load_dataset

PLANTED = (3, 17, 42, 66)  # item sources whose labels are flipped


def planted_dataset(name: str = "noisy") -> None:
    """Two clearly different classes (a bright left half, a bright right half), 40 each, with
    the labels of PLANTED flipped."""
    rng = np.random.default_rng(0)
    builder = DatasetBuilder(name, ["left", "right"], origin="test")
    for index in range(80):
        label = index % 2
        pixels = rng.integers(0, 50, (16, 16)).astype(np.uint8)
        pixels[:, :8] += 180 if label == 0 else 0
        pixels[:, 8:] += 180 if label == 1 else 0
        given = 1 - label if index in PLANTED else label
        builder.add(Image.fromarray(pixels), given, f"img/{index}")
    builder.finish(val=0.2, test=0.2, seed=0)


def test_folds_are_stratified_and_cover_every_item() -> None:
    labels = np.array([0] * 30 + [1] * 12)
    folds = stratified_folds(labels, 3)
    assert set(folds) == {0, 1, 2}
    for fold in range(3):
        assert (labels[folds == fold] == 1).sum() == 4


def test_cleanlab_ranks_the_confidently_contradicted_labels_first() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    probs = np.array([[.9, .1], [.8, .2], [.95, .05], [.1, .9], [.2, .8], [.15, .85],
                      [.02, .98], [.7, .3]])  # 6: given 0, sure it is 1; 7: given 1, likely 0
    ranked, scores = rank_label_issues(labels, probs)
    assert list(ranked[:2]) == [6, 7] and scores[6] < scores[7] < scores[0]


def test_planted_label_errors_are_ranked_on_top(studio_home: Path, capsys) -> None:
    from core.__main__ import main

    planted_dataset()
    code = main(["data", "label-issues", "--data", "noisy", "--folds", "4", "--epochs", "4",
                 "--device", "cpu", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    top = [issue["source"] for issue in result["issues"][:len(PLANTED)]]
    assert sorted(top) == sorted(f"img/{i}" for i in PLANTED)
    first = result["issues"][0]
    assert set(first) >= {"file", "source", "given", "suggested", "score"}
    assert first["given"] != first["suggested"]
    assert saved_label_issues(load_dataset("noisy"))["issues"] == result["issues"]


def test_accepting_suggestions_writes_a_new_version_and_keeps_the_original(
        studio_home: Path) -> None:
    planted_dataset()
    original = load_dataset("noisy")
    index = next(i for i, item in enumerate(original.items) if item.source == "img/3")
    version = save_dataset_version("noisy", "noisy-v2", relabel={index: "right"})
    assert version.items[index].label == 1 and load_dataset("noisy").items[index].label == 0
