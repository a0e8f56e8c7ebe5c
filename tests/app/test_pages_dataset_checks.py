"""The Datasets page says how an upload was read (its layout, a split drawn from train), warns
of imbalance, shows the duplicates found at import with a gallery per group and saves a version
without the extra copies; the zip tab passes a label pattern to the import."""

from __future__ import annotations

import io

import numpy as np
import pytest
from app_pages import open_page
from app_pages import unescaped_texts as texts
from data_sets import imbalanced_dataset
from PIL import Image
from upload_files import png, zip_bytes

from core.data.catalog import import_path
from core.data.dataset import list_datasets, load_dataset
from core.runs import imports


@pytest.fixture
def inline_imports(studio_home, monkeypatch):
    """Imports queued by the page run here, when the test says (no worker process)."""
    monkeypatch.setattr(imports, "ensure_import_worker", lambda: False)
    return studio_home


def colour(index: int, cls: int) -> tuple[int, int, int]:
    return (20 + 9 * index, 90, 40 if cls == 0 else 210)


def split_folders_zip() -> bytes:
    """train/ and test/ with class folders, no val/: the val split is drawn from train."""
    files = {f"data/{split}/{cls}/{i}.png": png(colour(i + (20 if split == "test" else 0), c))
             for split, count in (("train", 10), ("test", 3))
             for c, cls in enumerate(("cat", "dog")) for i in range(count)}
    return zip_bytes(files)


def file_names_zip() -> bytes:
    return zip_bytes({f"{cls}.{i}.png": png(colour(i, c))
                      for c, cls in enumerate(("cat", "dog")) for i in range(8)})


def test_the_overview_says_split_folders_were_kept_and_val_was_drawn(studio_home) -> None:
    import_path(io.BytesIO(split_folders_zip()), "pets")
    at = open_page("pages/datasets.py")
    shown = texts(at.caption)
    assert "Layout: split folders (train/, val/, test/ with class folders), splits kept as " \
           "given." in shown
    assert "the val split is drawn from the training images" in shown
    splits = load_dataset("pets").split_counts()
    assert splits["test"] == 6 and splits["val"] > 0


def test_the_overview_says_labels_came_from_file_names(studio_home) -> None:
    import_path(io.BytesIO(file_names_zip()), "names")
    shown = texts(open_page("pages/datasets.py").caption)
    assert "Layout: labels from file names (label.N.jpg)." in shown


def test_the_overview_says_labels_came_from_a_csv_and_names_missing_classes(studio_home,
                                                                              ) -> None:
    files = {f"img/{i}.png": png(colour(i, i % 2)) for i in range(12)}
    rows = ["file,label,split"] + [f"img/{i}.png,{('cat', 'dog')[i % 2]},"
                                   f"{'test' if i in (0, 2) else 'train'}" for i in range(12)]
    files["labels.csv"] = "\n".join(rows).encode()
    import_path(io.BytesIO(zip_bytes(files)), "listed")
    shown = texts(open_page("pages/datasets.py").caption)
    assert "Layout: labels from a CSV file in the upload." in shown
    assert "Classes missing from the test folder: 'dog'." in shown


def test_the_import_report_says_which_layout_was_read(inline_imports) -> None:
    imports.submit_zip(io.BytesIO(split_folders_zip()), "pets")
    at = open_page("pages/datasets.py")
    assert imports.work_imports(idle_exit_s=0, poll_s=0) == 1
    at.run()
    assert "Imported pets: 26 images in 2 classes." in texts(at.success)
    shown = texts(at.caption)
    assert shown.count("Layout: split folders") == 2  # in the report and in the overview
    assert shown.count("the val split is drawn from the training images") == 2


def test_the_zip_tab_passes_a_label_pattern_to_the_import(inline_imports) -> None:
    upload = zip_bytes({f"IMG_{cls}_{i:03d}.png": png(colour(i, c))
                        for c, cls in enumerate(("cat", "dog")) for i in range(6)})
    at = open_page("pages/datasets.py")
    at.file_uploader(key="zip_upload").upload("shots.zip", upload)
    at.run()
    at.text_input(key="zip_name").input("shots")
    at.text_input(key="zip_label_pattern").input(r"^IMG_([a-z]+)_\d+")
    at.button(key="zip_go").click().run()
    assert not at.exception, at.exception
    assert imports.work_imports(idle_exit_s=0, poll_s=0) == 1
    at.run()
    assert "Imported shots: 12 images in 2 classes." in texts(at.success)
    assert load_dataset("shots").classes == ["cat", "dog"]
    assert load_dataset("shots").layout == "file-names"
    assert "Layout: labels from file names" in texts(at.caption)


def test_a_bad_label_pattern_is_refused_before_anything_is_queued(inline_imports) -> None:
    at = open_page("pages/datasets.py")
    at.file_uploader(key="zip_upload").upload("shots.zip", file_names_zip())
    at.run()
    at.text_input(key="zip_label_pattern").input(r"^[a-z]+\d")  # no group
    at.button(key="zip_go").click().run()
    assert "has no group" in texts(at.error)
    assert imports.work_imports(idle_exit_s=0, poll_s=0) == 0


def test_both_pages_warn_of_imbalance_and_name_the_remedy(studio_home) -> None:
    imbalanced_dataset()
    warning = texts(open_page("pages/datasets.py").warning)
    assert "The classes are imbalanced: `big` has 150 training images, `small` 15" in warning
    assert "The Train page offers class weights or a balanced sampler" in warning
    warning = texts(open_page("pages/train.py").warning)
    assert "classes are imbalanced: `big`" in warning
    assert "This page offers class weights or a balanced sampler: More settings → Class " \
           "balance" in warning


def photo(rng: np.random.Generator) -> Image.Image:
    """A smooth random picture: enough structure for a perceptual hash."""
    blocks = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((48, 48), Image.Resampling.BICUBIC)


def encoded(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def pets_with_copies() -> bytes:
    """Two classes of ten pictures, one exact copy and one resized copy among the cats."""
    rng = np.random.default_rng(3)
    files = {f"{cls}/{i}.png": photo(rng) for cls in ("cat", "dog") for i in range(10)}
    upload = {name: encoded(image) for name, image in files.items()}
    upload["cat/copy.png"] = encoded(files["cat/0.png"])
    upload["cat/small.png"] = encoded(files["cat/1.png"].resize((40, 40)))
    return zip_bytes(upload)


def test_duplicates_get_a_gallery_and_one_click_saves_a_version_without_them(studio_home,
                                                                             ) -> None:
    import_path(io.BytesIO(pets_with_copies()), "pets")
    original = load_dataset("pets")
    assert len(original.duplicates) == 2
    at = open_page("pages/datasets.py")
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Exact groups"] == "1" and metrics["Near groups"] == "1"
    assert metrics["Extra copies"] == "2"
    assert "Leaks the split avoided" in metrics
    shown = texts(at.caption)
    assert "Group 1: exact, 2 copies, class cat" in shown
    assert "Group 2: near, 2 copies, class cat" in shown
    captions = [caption for image in at.get("image") for caption in image.captions]
    split = original.items[original.duplicates[0]["items"][0]].split
    assert f"cat/copy.png · {split}" in captions and f"cat/0.png · {split}" in captions

    at.button(key="dedupe_save").click().run()
    assert not at.exception, at.exception
    assert "Saved pets-v2: 20 images, without 2 extra copies. pets is unchanged." in \
        texts(at.success)
    assert list_datasets() == ["pets", "pets-v2"]
    assert len(load_dataset("pets").items) == 22  # the original is left alone
    kept = {item.source for item in load_dataset("pets-v2").items}
    assert "cat/0.png" in kept and "cat/copy.png" not in kept and "cat/small.png" not in kept
    at.button(key="dedupe_open").click().run()
    assert at.selectbox(key="dataset_pick").value == "pets-v2"
    assert "No duplicate images were found at import." in texts(at.caption)

