"""In a real browser, the layouts real downloads use (issue 12): a zip of train/, val/ and test/
folders holding class folders, and a flat zip of cat.1.png, dog.2.png … are imported through
the Datasets page, which says which layout it read and shows the right classes (not `train`,
`val` and `test`, and not "one class only").
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from live_app import (
    NEEDS_CHROMIUM,
    assert_no_exception,
    open_page,
    screenshot,
    uploader,
    wait_idle,
)
from playwright.sync_api import expect
from upload_files import png

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


def shade(index: int, blue: int) -> tuple[int, int, int]:
    return (10 + 7 * index, 120, blue)


def split_folders_zip(path: Path) -> Path:
    """data/train|val|test/<class>/n.png, as the cats-vs-dogs article lays its folders out."""
    with zipfile.ZipFile(path, "w") as archive:
        for split, count in (("train", 8), ("val", 2), ("test", 2)):
            for cls, blue in (("cat", 30), ("dog", 220)):
                for index in range(count):
                    number = index + {"train": 0, "val": 10, "test": 20}[split]
                    archive.writestr(f"data/{split}/{cls}/{number}.png", png(shade(number, blue),
                                                                             16))
    return path


def file_names_zip(path: Path) -> Path:
    """One flat folder of label.N.png files, as the best-known cats-vs-dogs download ships, with
    one exact copy (apple.10.png is apple.1.png)."""
    with zipfile.ZipFile(path, "w") as archive:
        for cls, blue in (("apple", 60), ("pear", 180)):
            for index in range(9):
                archive.writestr(f"{cls}.{index + 1}.png", png(shade(index, blue), 16))
        archive.writestr("apple.10.png", png(shade(0, 60), 16))
    return path


@pytest.fixture
def page(app_url: str, browser):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.set_default_timeout(30_000)
    yield tab


def import_zip(page, archive: Path, name: str, images: int) -> None:
    zip_box = uploader(page, "A zip of class folders")
    zip_box.locator("input[type=file]").set_input_files(archive)
    expect(zip_box.get_by_text(archive.name)).to_be_visible(timeout=60_000)
    name_box = page.get_by_role("textbox", name="Dataset name").first
    name_box.fill(name)
    name_box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Import zip").click()
    page.get_by_text(f"Imported {name}: {images} images in 2 classes").wait_for(timeout=180_000)
    wait_idle(page)


def gallery_classes(page) -> set[str]:
    """The class names heading each row of the per-class gallery (bold, above their count)."""
    rows = page.locator("[data-testid='stMarkdownContainer'] p:has(strong)")
    return {text.split("\n")[0].strip() for text in rows.all_inner_texts()
            if text.rstrip().endswith(" images")}


def test_split_folders_and_file_name_labels_are_read_as_such(app_url: str, page,
                                                              tmp_path: Path) -> None:
    open_page(page, f"{app_url}/datasets")
    import_zip(page, split_folders_zip(tmp_path / "cats-and-dogs.zip"), "pets", 24)
    line = "Layout: split folders (train/, val/, test/ with class folders), splits kept as given."
    expect(page.get_by_text(line).first).to_be_visible()
    assert page.get_by_text(line).count() == 2  # the import report and the overview
    assert gallery_classes(page) == {"cat", "dog"}
    assert_no_exception(page)
    screenshot(page, "datasets-split-folders")

    import_zip(page, file_names_zip(tmp_path / "fruit.zip"), "fruit", 19)
    expect(page.get_by_text("Layout: labels from file names (label.N.jpg).").first) \
        .to_be_visible()
    assert gallery_classes(page) == {"apple", "pear"}
    page.get_by_text("Group 1: exact, 2 copies, class apple").wait_for()
    assert_no_exception(page)
    screenshot(page, "datasets-file-names")

    page.get_by_role("button", name="Save a version without the extra copies").click()
    page.get_by_text("Saved fruit-v2: 18 images, without 1 extra copy. fruit is unchanged.") \
        .wait_for(timeout=60_000)
    wait_idle(page)
    assert_no_exception(page)
