"""The data map (core.analysis.data_map): a run's penultimate features of a split projected to
2-D, one row per image with its given and predicted label; the same input, the same map."""

from __future__ import annotations

import numpy as np
import pytest

from core.analysis.data_map import data_map, project
from core.analysis.error_analysis import validation_predictions
from core.data.dataset import load_dataset


def blobs(n: int = 60, dim: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, dim)) * 4
    return (centres[np.arange(n) % 3] + rng.normal(size=(n, dim))).astype(np.float32)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_a_projection_has_two_columns_and_is_deterministic(method: str) -> None:
    features = blobs()
    first, again = project(features, method), project(features.copy(), method)
    assert first.shape == (60, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert np.isfinite(first).all()


def test_pca_keeps_the_clusters_apart() -> None:
    coords = project(blobs())
    centres = np.stack([coords[i::3].mean(0) for i in range(3)])
    spread = max(coords[i::3].std(0).max() for i in range(3))
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert min(gaps) > 2 * spread


def test_tiny_inputs_still_give_a_map() -> None:
    assert project(np.ones((1, 4))).shape == (1, 2)
    assert project(np.zeros((0, 4))).shape == (0, 2)
    with pytest.raises(ValueError, match="Unknown projection"):
        project(blobs(), "umap")


def test_a_run_s_map_has_a_row_per_test_image_and_agrees_with_its_predictions(
        trained_run: str) -> None:
    frame = data_map(trained_run, "test")
    dataset = load_dataset("shapes")
    assert frame.attrs["split"] == "test"
    assert sorted(frame["index"]) == dataset.indices("test")
    assert frame[["x", "y"]].notna().all().all()
    assert (frame["correct"] == (frame["given"] == frame["predicted"])).all()
    again = data_map(trained_run, "test")
    np.testing.assert_array_equal(frame[["x", "y"]].to_numpy(), again[["x", "y"]].to_numpy())
    val = data_map(trained_run, "val")
    predictions = validation_predictions(trained_run).set_index("index")
    assert (val.set_index("index")["predicted"] == predictions.loc[val["index"], "predicted"]).all()
