"""Upload layouts: split folders, labels in file names, a CSV of labels in the zip, class folders.

Every zip is built here from seeded random images (each one distinct, so no duplicate
grouping interferes with the split being checked).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from upload_files import zip_bytes

from core.__main__ import main
from core.data.dataset import DatasetError, load_dataset
from core.data.ingest import import_dataset, import_entries

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "workspace"
    monkeypatch.setenv("CNN_STUDIO_HOME", str(home))
    return home


def picture() -> bytes:
    """A distinct image: random 6×6 blocks, enlarged to 24×24."""
    blocks = RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(blocks).resize((24, 24), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def tree(prefix: str, classes: dict[str, int]) -> dict[str, bytes]:
    return {f"{prefix}{cls}/{i}.png": picture() for cls, n in classes.items() for i in range(n)}


def write_zip(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "upload.zip"
    path.write_bytes(zip_bytes(files))
    return path


def splits_by_source(dataset) -> dict[str, str]:
    return {item.source: item.split for item in dataset.items}


def test_the_seed_layout_is_split_folders_with_the_splits_kept(tmp_path):
    files = {**tree("data/train/", {"cat": 6, "dog": 6}),
             **tree("data/validation/", {"cat": 2, "dog": 2}),
             **tree("data/test/", {"cat": 3, "dog": 3})}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert dataset.classes == ["cat", "dog"]
    assert dataset.layout == "split-folders"
    for source, split in splits_by_source(dataset).items():
        folder = source.split("/")[1]
        assert split == {"train": "train", "validation": "val", "test": "test"}[folder]
    assert dataset.split_counts() == {"train": 12, "val": 4, "test": 6}
    assert not [note for note in dataset.notes if "drawn" in note]
    assert load_dataset("pets").layout == "split-folders"  # in the manifest


@pytest.mark.parametrize("val_name", ["val", "valid", "validation", "Val"])
def test_every_val_folder_name_is_read_as_the_val_split(tmp_path, val_name):
    files = {**tree("train/", {"a": 4, "b": 4}), **tree(f"{val_name}/", {"a": 2, "b": 2})}
    dataset = import_dataset(write_zip(tmp_path, files), "ab", test=0.0)
    assert dataset.split_counts()["val"] == 4
    assert all(split == "val" for source, split in splits_by_source(dataset).items()
               if source.startswith(val_name))


def test_a_missing_val_split_is_drawn_from_train_and_the_report_says_so(tmp_path):
    files = {**tree("archive/train/", {"cat": 10, "dog": 10}),
             **tree("archive/test/", {"cat": 3, "dog": 3})}
    dataset = import_dataset(write_zip(tmp_path, files), "pets", val=0.2, seed=3)
    by_source = splits_by_source(dataset)
    assert {by_source[s] for s in by_source if "/test/" in s} == {"test"}
    assert {by_source[s] for s in by_source if "/train/" in s} == {"train", "val"}
    assert dataset.class_split_counts()["cat"] == {"train": 8, "val": 2, "test": 3}
    assert any("val split is drawn from the training images" in note and "seed 3" in note
               for note in dataset.notes)
    again = import_dataset(write_zip(tmp_path, files), "pets2", val=0.2, seed=3)
    assert splits_by_source(again) == by_source  # seeded


def test_only_a_train_folder_draws_both_splits(tmp_path):
    dataset = import_dataset(write_zip(tmp_path, tree("data/train/", {"x": 10, "y": 10})), "xy")
    assert dataset.layout == "split-folders"
    assert dataset.classes == ["x", "y"]
    assert dataset.split_counts() == {"train": 16, "val": 2, "test": 2}
    assert sum("drawn" in note for note in dataset.notes) == 2


def test_differing_class_sets_say_which_classes_are_missing_where(tmp_path):
    files = {**tree("train/", {"cat": 5, "dog": 5, "eel": 5}),
             **tree("val/", {"cat": 2, "dog": 2, "eel": 2}),
             **tree("test/", {"cat": 2, "dog": 2})}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert dataset.classes == ["cat", "dog", "eel"]
    missing = [note for note in dataset.notes if "missing" in note]
    assert len(missing) == 1 and "test" in missing[0] and "'eel'" in missing[0]
    assert "'cat'" not in missing[0]


def test_a_class_missing_from_train_is_called_out(tmp_path):
    files = {**tree("train/", {"cat": 5, "dog": 5}), **tree("test/", {"cat": 2, "dog": 2,
                                                                      "owl": 2})}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert any("train" in note and "'owl'" in note and "never sees" in note
               for note in dataset.notes)


def test_a_class_folder_named_train_holding_images_is_not_a_split(tmp_path):
    files = {**{f"train/{i}.png": picture() for i in range(5)}, **tree("", {"bus": 5})}
    dataset = import_dataset(write_zip(tmp_path, files), "vehicles")
    assert dataset.layout == "class-folders"
    assert dataset.classes == ["bus", "train"]


def test_labels_from_file_names_in_a_flat_folder(tmp_path):
    files = {**{f"pets/cat.{i}.png": picture() for i in range(4)},
             **{f"pets/dog_{i}.png": picture() for i in range(4)},
             **{f"pets/golden_retriever-{i}.png": picture() for i in range(4)}}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert dataset.layout == "file-names"
    assert dataset.classes == ["cat", "dog", "golden_retriever"]
    assert dataset.counts() == {"cat": 4, "dog": 4, "golden_retriever": 4}


def test_file_name_labels_drop_names_without_a_label(tmp_path):
    files = {**{f"cat.{i}.png": picture() for i in range(5)},
             **{f"dog.{i}.png": picture() for i in range(5)}, "readme-photo.png": picture()}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert dataset.layout == "file-names"
    assert "carries no label" in {d["file"]: d["reason"] for d in dataset.dropped}[
        "readme-photo.png"]


def test_a_label_pattern_reads_other_names(tmp_path):
    files = {f"shots/IMG_{cls}_{i:04d}.png": picture() for cls in ("rose", "tulip")
             for i in range(5)}
    files["shots/notes.png"] = picture()
    dataset = import_dataset(write_zip(tmp_path, files), "flowers",
                             label_pattern=r"^IMG_([a-z]+)_")
    assert dataset.layout == "file-names"
    assert dataset.counts() == {"rose": 5, "tulip": 5}
    assert "label pattern" in {d["file"]: d["reason"] for d in dataset.dropped}["shots/notes.png"]


@pytest.mark.parametrize("pattern, words", [("([a-z", "not a valid regular expression"),
                                            ("[a-z]+", "has no group")])
def test_a_bad_label_pattern_says_what_to_do(tmp_path, pattern, words):
    with pytest.raises(DatasetError, match=words):
        import_dataset(write_zip(tmp_path, tree("", {"a": 3, "b": 3})), "x",
                       label_pattern=pattern)


def test_kaggle_cats_and_dogs_train_folder_of_names_with_an_unlabelled_test1(tmp_path):
    files = {**{f"train/{cls}.{i}.png": picture() for cls in ("cat", "dog") for i in range(8)},
             **{f"test1/{i}.png": picture() for i in range(4)}}
    dataset = import_dataset(write_zip(tmp_path, files), "kaggle")
    assert dataset.layout == "split-folders"
    assert dataset.counts() == {"cat": 8, "dog": 8}
    reasons = {d["file"]: d["reason"] for d in dataset.dropped}
    assert "outside the train/" in reasons["test1/0.png"]


def test_flat_split_folders_of_unlabelled_images_are_not_classes(tmp_path):
    files = {**{f"train/{i}.png": picture() for i in range(5)},
             **{f"test/{i}.png": picture() for i in range(5)}, **tree("", {"a": 1})}
    with pytest.raises(DatasetError, match="hold images directly.*own folder"):
        import_dataset(write_zip(tmp_path, files), "x")


def test_a_csv_of_labels_inside_the_zip(tmp_path):
    names = [f"images/{i:03d}.png" for i in range(12)]
    files = {name: picture() for name in names}
    files["images/extra.png"] = picture()
    rows = ["file,label"] + [f"{name.split('/')[1]},{'cat' if i % 2 else 'dog'}"
                             for i, name in enumerate(names)] + ["missing.png,cat"]
    files["labels.csv"] = "\n".join(rows).encode()
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert dataset.layout == "csv"
    assert dataset.counts() == {"cat": 6, "dog": 6}
    reasons = {d["file"]: d["reason"] for d in dataset.dropped}
    assert "not listed in labels.csv" in reasons["images/extra.png"]
    assert "labels.csv" not in reasons
    assert any("1 row(s)" in note for note in dataset.notes)


def test_any_csv_with_file_and_label_columns_and_a_split_column(tmp_path):
    files = {f"pics/{i}.png": picture() for i in range(16)}
    rows = ["id,class,split"] + [f"pics/{i}.png,{'a' if i < 8 else 'b'},"
                                 f"{'test' if i % 4 == 0 else 'train'}" for i in range(16)]
    files["meta/annotations.csv"] = "\n".join(rows).encode()
    dataset = import_dataset(write_zip(tmp_path, files), "ab")
    assert dataset.layout == "csv"
    assert {item.split for item in dataset.items if item.source.split("/")[1] in
            {f"{i}.png" for i in range(0, 16, 4)}} == {"test"}
    assert any("val split is drawn" in note for note in dataset.notes)


def test_a_csv_without_usable_columns_falls_back_to_folders(tmp_path):
    files = {**tree("", {"a": 4, "b": 4}), "labels.csv": b"x,y\n1,2\n"}
    dataset = import_dataset(write_zip(tmp_path, files), "ab")
    assert dataset.layout == "class-folders"
    assert any("no file and label columns" in note for note in dataset.notes)


def test_class_folders_are_still_class_folders(tmp_path):
    dataset = import_dataset(write_zip(tmp_path, tree("top/", {"a": 4, "b": 4})), "ab")
    assert dataset.layout == "class-folders"
    assert dataset.summary()["layout"] == "class-folders"


def test_files_in_memory_read_split_folders_too():
    pairs = [(name, data) for name, data in {**tree("train/", {"a": 5, "b": 5}),
                                             **tree("test/", {"a": 2, "b": 2})}.items()]
    dataset = import_entries(pairs, "mem")
    assert dataset.layout == "split-folders" and dataset.split_counts()["test"] == 4


def test_cli_import_json_has_layout_and_show_lists_items(tmp_path, capsys):
    files = {**tree("d/train/", {"a": 5, "b": 5}), **tree("d/test/", {"a": 2, "b": 2})}
    path = write_zip(tmp_path, files)
    assert main(["data", "import", str(path), "--name", "ab", "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["layout"] == "split-folders"
    assert imported["duplicates"] == []
    assert main(["data", "show", "ab", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["layout"] == "split-folders"
    assert shown["class_splits"]["a"]["test"] == 2
    assert len(shown["items"]) == 14
    item = next(item for item in shown["items"] if item["source"] == "d/test/b/0.png")
    assert item["split"] == "test" and item["label"] == "b"
    assert (load_dataset("ab").folder / item["file"]).exists()
    assert main(["data", "show", "ab"]) == 0
    assert "split-folders" in capsys.readouterr().out


def test_cli_label_pattern(tmp_path, capsys):
    files = {f"x/{cls}{i}.png": picture() for cls in ("up", "down") for i in range(5)}
    path = write_zip(tmp_path, files)
    assert main(["data", "import", str(path), "--name", "ud", "--json",
                 "--label-pattern", "^([a-z]+)[0-9]"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"down": 5, "up": 5}
