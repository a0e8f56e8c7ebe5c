"""Error analysis: validation predictions of a real one-epoch run, confusion cells, confident
mistakes, and saving a cleaned dataset version (removed, relabelled, splits kept, original
untouched)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.analysis.error_analysis import (
    CACHE_NAME,
    cell_images,
    class_gallery,
    confident_mistakes,
    confusion_from_predictions,
    predictions_frame,
    save_dataset_version,
    top_probabilities,
    validation_predictions,
)
from core.data.cache import cache_path
from core.data.dataset import Dataset, DatasetError, Item, load_dataset
from core.workspace import runs_dir


@pytest.fixture(scope="module")
def shapes_run(shapes_workspace, train_shapes_run):
    """(store, run, run evaluated with flip TTA): one-epoch tiny-cnn runs on the built-in shapes
    dataset, in their own workspace."""
    store = shapes_workspace
    plain, with_tta = (train_shapes_run(store, tta_flip=tta) for tta in (False, True))
    return store, plain, with_tta


def hand_made_frame() -> pd.DataFrame:
    """Six validation items of a three-class dataset with chosen probabilities."""
    classes = ["cat", "dog", "eel"]
    labels = [0, 0, 0, 1, 1, 2]
    items = [Item(f"images/{label}/{i}.png", label, "val") for i, label in enumerate(labels)]
    dataset = Dataset("hand", classes, 3, items)
    probs = np.array([[0.2, 0.7, 0.1],   # cat → dog, loss −log 0.2
                      [0.1, 0.8, 0.1],   # cat → dog, loss −log 0.1 (worse)
                      [0.9, 0.05, 0.05],  # cat right
                      [0.6, 0.3, 0.1],   # dog → cat
                      [0.0, 1.0, 0.0],   # dog right
                      [0.3, 0.65, 0.05]], dtype=np.float32)  # eel → dog, loss −log 0.05
    return predictions_frame(dataset, np.arange(6), probs)


# ------------------------------------------------------------------------------ pure

def test_predictions_frame_has_probabilities_and_loss():
    frame = hand_made_frame()
    first = frame.iloc[0]
    assert (first["true"], first["predicted"]) == ("cat", "dog")
    assert first["prob_predicted"] == pytest.approx(0.7)
    assert first["prob_true"] == pytest.approx(0.2)
    assert first["loss"] == pytest.approx(-np.log(0.2))
    assert frame["correct"].tolist() == [False, False, True, False, True, False]
    assert np.isfinite(frame["loss"]).all()


def test_cell_images_are_all_of_the_cell_and_sorted_by_loss():
    frame = hand_made_frame()
    cell = cell_images(frame, "cat", "dog")
    assert cell["index"].tolist() == [1, 0]  # the higher loss first
    assert (cell["true"] == "cat").all() and (cell["predicted"] == "dog").all()
    assert cell_images(frame, 0, 1)["index"].tolist() == [1, 0]  # by class id alike
    assert cell_images(frame, "eel", "cat").empty


def test_confident_mistakes_are_wrong_and_most_confident_first():
    mistakes = confident_mistakes(hand_made_frame(), n=3)
    assert mistakes["index"].tolist() == [1, 0, 5]
    assert not mistakes["correct"].any()


def test_class_gallery_shows_one_true_class_hardest_first():
    gallery = class_gallery(hand_made_frame(), "cat")
    assert gallery["index"].tolist() == [1, 0, 2]
    assert class_gallery(hand_made_frame(), "cat", n=1)["index"].tolist() == [1]


def test_confusion_from_predictions_counts_each_cell():
    matrix = confusion_from_predictions(hand_made_frame(), 3)
    np.testing.assert_array_equal(matrix, [[1, 2, 0], [1, 1, 0], [0, 1, 0]])


# ------------------------------------------------------------------------------ a real run

def test_validation_predictions_cover_the_val_split_and_match_the_run(shapes_run):
    store, run_id, tta_run_id = shapes_run
    frame = validation_predictions(run_id, store)
    dataset = load_dataset("shapes")
    assert frame["index"].tolist() == dataset.indices("val")
    assert frame["file"].tolist() == [dataset.items[i].file for i in dataset.indices("val")]
    assert (frame["prob_predicted"] >= frame["prob_true"] - 1e-6).all()
    for run in (run_id, tta_run_id):
        accuracy = validation_predictions(run, store)["correct"].mean()
        best = json.loads((runs_dir() / run / "best.json").read_text())
        assert accuracy == pytest.approx(best["val_acc"], abs=1.5 / len(frame))
    matrix = confusion_from_predictions(frame, len(dataset.classes))
    for true in range(3):
        for predicted in range(3):
            cell = cell_images(frame, true, predicted)
            assert len(cell) == matrix[true, predicted]
            assert (cell["true_id"] == true).all() and (cell["predicted_id"] == predicted).all()
            assert cell["loss"].is_monotonic_decreasing


def test_validation_predictions_are_cached_until_the_checkpoint_changes(shapes_run):
    store, run_id, _ = shapes_run
    folder = runs_dir() / run_id
    fresh = validation_predictions(run_id, store)
    cached = np.load(folder / CACHE_NAME)
    fake = np.full_like(cached["probs"], 1 / 3)
    fake[:, 2] += 0.01  # everything "triangle"
    np.savez(folder / CACHE_NAME, key=cached["key"], indices=cached["indices"], probs=fake)
    assert (validation_predictions(run_id, store)["predicted"] == "triangle").all()
    assert top_probabilities(run_id, int(fresh["index"][0]), k=1, store=store)[0]["label"] \
        == "triangle"
    weights = folder / "best.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    pd.testing.assert_frame_equal(validation_predictions(run_id, store), fresh)


# ------------------------------------------------------------------------------ dataset versions

def test_saved_version_excludes_removed_items_and_keeps_splits(shapes_run):
    original = load_dataset("shapes")
    remove = {0, 5, original.indices("val")[0], original.indices("test")[-1]}
    version = save_dataset_version("shapes", "shapes-v2", remove=remove)
    kept = [i for i in range(len(original.items)) if i not in remove]
    assert len(version.items) == len(original.items) - len(remove)
    assert [item.source for item in version.items] == [original.items[i].source for i in kept]
    assert [item.split for item in version.items] == [original.items[i].split for i in kept]
    assert [item.label for item in version.items] == [original.items[i].label for i in kept]
    for new, old in ((0, kept[0]), (-1, kept[-1])):
        pixels = np.asarray(Image.open(version.folder / version.items[new].file))
        np.testing.assert_array_equal(pixels, np.asarray(
            Image.open(original.folder / original.items[old].file)))


def test_saved_version_applies_relabels(shapes_run):
    original = load_dataset("shapes")
    circles = [i for i, item in enumerate(original.items) if item.label == 0][:3]
    version = save_dataset_version("shapes", "shapes-relabelled",
                                   relabel={i: "triangle" for i in circles})
    assert [version.items[i].label for i in circles] == [2, 2, 2]
    untouched = [i for i in range(len(original.items)) if i not in circles]
    assert all(version.items[i].label == original.items[i].label for i in untouched)
    assert version.items[circles[0]].file.startswith("images/2/")
    assert version.counts()["triangle"] == original.counts()["triangle"] + 3


def test_saved_version_leaves_the_original_untouched_and_is_recorded(shapes_run):
    store, *_ = shapes_run
    original = load_dataset("shapes")
    manifest = (original.folder / "manifest.json").read_bytes()
    files = sorted(p.relative_to(original.folder) for p in original.folder.rglob("*"))
    save_dataset_version("shapes", "shapes-v3", remove={1, 2}, relabel={3: "square"})
    assert (original.folder / "manifest.json").read_bytes() == manifest
    assert sorted(p.relative_to(original.folder) for p in original.folder.rglob("*")) == files
    recorded = {summary["name"]: summary for summary in store.dataset_summaries()}
    assert recorded["shapes-v3"]["kept"] == len(original.items) - 2
    assert recorded["shapes-v3"]["content_hash"] != original.content_hash


def test_saved_version_reuses_the_decoded_cache(shapes_run):
    original = load_dataset("shapes")
    version = save_dataset_version("shapes", "shapes-cached", remove={7})
    old = np.load(cache_path(original, 32))
    new = np.load(cache_path(version, 32))
    np.testing.assert_array_equal(new, np.delete(old, 7, axis=0))


def test_saved_version_refuses_bad_edits_and_leaves_nothing_behind(shapes_run):
    original = load_dataset("shapes")
    with pytest.raises(DatasetError, match="Unknown classes"):
        save_dataset_version("shapes", "shapes-bad", relabel={0: "hexagon"})
    with pytest.raises(DatasetError, match="not in dataset"):
        save_dataset_version("shapes", "shapes-bad", remove={len(original.items)})
    with pytest.raises(DatasetError, match="validation"):
        save_dataset_version("shapes", "shapes-bad", remove=set(original.indices("val")))
    with pytest.raises(DatasetError, match="already exists"):
        save_dataset_version("shapes", "shapes")
    assert not (original.folder.parent / "shapes-bad").exists()
    assert not list(original.folder.parent.glob(".importing-*"))
    assert load_dataset("shapes").content_hash == original.content_hash
