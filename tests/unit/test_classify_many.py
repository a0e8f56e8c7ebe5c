"""Classifying a whole zip or folder: rows, scores when labelled, junk skipped, CSV out."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from upload_files import png, zip_bytes

from core.data.dataset import DatasetError, load_dataset
from core.serving.batch import classify_archive, rows_to_csv
from core.serving.infer import LoadedModel, load_model

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def trained(shapes_workspace, train_shapes_run):
    """A tiny-cnn run trained one epoch on the shapes demo, loaded for inference."""
    return load_model(train_shapes_run(shapes_workspace), shapes_workspace)


@pytest.fixture(scope="module")
def shape_files(trained: LoadedModel) -> dict[str, bytes]:
    """{"circle/000.png": bytes, ...}: 70 of the demo's images (more than one batch of 64)."""
    dataset = load_dataset("shapes")
    files = {}
    for item in dataset.items[::4][:70]:
        cls = dataset.classes[item.label]
        files[f"{cls}/{len(files):03d}.png"] = (dataset.folder / item.file).read_bytes()
    return files


def test_labelled_zip_is_scored_with_a_confusion_matrix(trained, shape_files) -> None:
    result = classify_archive(trained, zip_bytes(shape_files))
    assert len(result["rows"]) == len(shape_files) == result["labelled"] and not result["skipped"]
    confusion = np.array(result["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == len(shape_files)
    hits = sum(row["label"] == row["true_label"] for row in result["rows"])
    assert result["accuracy"] == pytest.approx(hits / len(shape_files))
    assert [row["class"] for row in result["per_class"]] == CLASSES
    assert {row["true_label"] for row in result["rows"]} == set(CLASSES)


def test_rows_carry_top_k_in_order_and_the_file_name(trained, shape_files) -> None:
    result = classify_archive(trained, zip_bytes(shape_files), top_k=2)
    row = result["rows"][0]
    assert row["file"] == next(iter(shape_files))
    assert len(row["top"]) == 2 and row["top"][0]["prob"] >= row["top"][1]["prob"]
    assert row["label"] == row["top"][0]["label"] and row["prob"] == row["top"][0]["prob"]


def test_predictions_match_classifying_one_image_at_a_time(trained, shape_files) -> None:
    result = classify_archive(trained, zip_bytes(shape_files))
    for row in result["rows"][:5]:
        single = trained.top_k([Image.open(io.BytesIO(shape_files[row["file"]]))], 3)[0]
        assert single[0]["label"] == row["label"]
        assert single[0]["prob"] == pytest.approx(row["prob"], abs=1e-5)


def test_zip_inside_a_top_folder_is_still_labelled(trained, shape_files) -> None:
    files = {f"upload/{name}": data for name, data in list(shape_files.items())[:6]}
    result = classify_archive(trained, zip_bytes(files))
    assert result["labelled"] == 6 and result["accuracy"] is not None


def test_unlabelled_zip_gives_rows_without_scores(trained, shape_files) -> None:
    flat = {f"img_{i}.png": data for i, data in enumerate(shape_files.values())}
    result = classify_archive(trained, zip_bytes(flat))
    assert len(result["rows"]) == len(flat)
    assert result["accuracy"] is None and result["confusion"] is None
    assert all(row["true_label"] is None for row in result["rows"])


def test_folders_that_are_not_the_runs_classes_give_no_labels(trained) -> None:
    files = {"cats/a.png": png(), "dogs/b.png": png((30, 30, 200))}
    result = classify_archive(trained, zip_bytes(files))
    assert len(result["rows"]) == 2 and result["labelled"] == 0 and result["accuracy"] is None


def test_junk_in_the_zip_is_skipped_with_a_reason(trained, shape_files) -> None:
    images = dict(list(shape_files.items())[:4])
    junk = {"notes.txt": b"hello", "__MACOSX/circle/._a.png": b"meta", ".DS_Store": b"x",
            "circle/broken.png": b"\x89PNG\r\n\x1a\nnot really", "../escape.png": png()}
    result = classify_archive(trained, zip_bytes(images | junk))
    assert [row["file"] for row in result["rows"]] == list(images)
    reasons = {item["file"]: item["reason"] for item in result["skipped"]}
    assert set(reasons) == set(junk)
    assert "not an image" in reasons["notes.txt"]
    assert "unsafe path" in reasons["../escape.png"]
    assert "corrupt" in reasons["circle/broken.png"] or "not an image" in reasons[
        "circle/broken.png"]
    assert result["labelled"] == 4


def test_sources_path_file_object_and_folder_agree(trained, shape_files, tmp_path) -> None:
    files = dict(list(shape_files.items())[:5])
    data = zip_bytes(files)
    (tmp_path / "batch.zip").write_bytes(data)
    for name, content in files.items():
        (tmp_path / "folder" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / name).write_bytes(content)
    results = [classify_archive(trained, source) for source in
               (data, io.BytesIO(data), tmp_path / "batch.zip", tmp_path / "folder")]
    labels = [[(row["file"], row["label"]) for row in result["rows"]] for result in results]
    assert all(rows == labels[0] for rows in labels) and len(labels[0]) == 5


def test_progress_reaches_the_total(trained, shape_files) -> None:
    calls = []
    classify_archive(trained, zip_bytes(shape_files), progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 70) and calls[-1] == (70, 70)
    assert len(calls) == 3  # one call before, then one per batch of 64


def test_something_that_is_not_a_zip_is_refused(trained, tmp_path) -> None:
    with pytest.raises(DatasetError, match="not a readable zip"):
        classify_archive(trained, b"this is not a zip")
    (tmp_path / "x.rar").write_bytes(b"rar")
    with pytest.raises(DatasetError, match="not a .zip"):
        classify_archive(trained, Path(tmp_path / "x.rar"))


def test_csv_has_a_header_and_one_row_per_image(trained, shape_files) -> None:
    result = classify_archive(trained, zip_bytes(shape_files))
    text = rows_to_csv(result["rows"])
    table = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "file,label,prob,true_label,correct,unknown,top"
    assert len(table) == len(shape_files)
    first, row = table[0], result["rows"][0]
    assert first["file"] == row["file"] and first["label"] == row["label"]
    assert first["correct"] == str(row["label"] == row["true_label"]).lower()
    assert first["top"].split(";")[0].startswith(f"{row['label']}:")


def test_csv_of_unlabelled_rows_leaves_truth_empty() -> None:
    rows = [{"file": "a,b.png", "label": "cat", "prob": 0.9, "true_label": None,
             "top": [{"label": "cat", "prob": 0.9}]}]
    table = list(csv.DictReader(io.StringIO(rows_to_csv(rows))))
    assert table == [{"file": "a,b.png", "label": "cat", "prob": "0.9000", "true_label": "",
                      "correct": "", "unknown": "false", "top": "cat:0.9000"}]


def test_unknown_rows_are_counted(trained, shape_files) -> None:
    result = classify_archive(trained, zip_bytes(shape_files))
    assert all(isinstance(row["unknown"], bool) for row in result["rows"])
    assert result["unknown"] == sum(row["unknown"] for row in result["rows"])
    flagged = [row for row in result["rows"] if row["unknown"]]
    assert all(row["score"] < trained.detector.threshold for row in flagged)
