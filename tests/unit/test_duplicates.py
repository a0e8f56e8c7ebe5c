"""Duplicates at import: exact and near copies found, kept in one split, removed by dedupe."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from upload_files import zip_bytes

from core.__main__ import main
from core.data.dataset import load_dataset
from core.data.duplicates import hash_pairs

RNG = np.random.default_rng(1)


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CNN_STUDIO_HOME", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


def photo() -> Image.Image:
    """A smooth random picture, 96×96: enough structure for a perceptual hash."""
    blocks = RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((96, 96), Image.Resampling.BICUBIC)


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_hash_index_finds_every_pair_within_seven_bits():
    hashes = RNG.integers(0, 2**63, 3000, dtype=np.uint64)
    near = hashes[:200] ^ np.uint64(0b1010101)  # 4 bits flipped
    table = np.concatenate([hashes, near])
    found = {tuple(pair) for pair in hash_pairs(table, table).tolist()}
    assert {(i, 3000 + i) for i in range(200)} <= found
    bits = np.bitwise_count(table[:, None] ^ table[None, :])
    brute = {(i, j) for i, j in zip(*np.nonzero(bits <= 7), strict=True) if i < j}
    assert found == brute


def test_exact_and_near_copies_are_found_and_kept_in_one_split(tmp_path, capsys):
    files, originals = {}, {}
    for cls in ("cat", "dog"):
        for i in range(12):
            image = photo()
            originals[f"{cls}/{i}.png"] = image
            files[f"{cls}/{i}.png"] = encoded(image)
    cat0, cat1, cat2, cat3 = (originals[f"cat/{i}.png"] for i in range(4))
    files["cat/copy.png"] = encoded(cat0)  # the same pixels
    files["cat/jpeg.jpg"] = encoded(cat1, "JPEG", quality=60)
    files["cat/small.png"] = encoded(cat2.resize((64, 64)))
    files["cat/bright.png"] = encoded(ImageEnhance.Brightness(cat3).enhance(1.15))
    files["cat/crop.png"] = encoded(originals["cat/4.png"].crop((3, 3, 93, 93)))
    path = tmp_path / "pets.zip"
    path.write_bytes(zip_bytes(files))
    assert main(["data", "import", str(path), "--name", "pets", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    groups = {frozenset(group["files"]): group["kind"] for group in report["duplicates"]}
    assert groups[frozenset({"cat/0.png", "cat/copy.png"})] == "exact"
    for i, copy in ((1, "jpeg.jpg"), (2, "small.png"), (3, "bright.png"), (4, "crop.png")):
        assert groups[frozenset({f"cat/{i}.png", f"cat/{copy}"})] == "near", copy
    assert len(groups) == 5  # no two distinct pictures grouped
    dataset = load_dataset("pets")
    for group in dataset.duplicates:
        assert len({dataset.items[i].split for i in group["items"]}) == 1
    assert dataset.leaks["in_split"] == 0
    assert "without_grouping" in report["leaks"]

    assert main(["data", "dedupe", "pets", "--keep", "first", "--json"]) == 0
    deduped = json.loads(capsys.readouterr().out)
    assert deduped["kept"] == len(dataset.items) - 5
    assert deduped["name"] != "pets"
    assert len(load_dataset("pets").items) == len(dataset.items)  # the original is untouched
    kept = {item.source for item in load_dataset(deduped["name"]).items}
    assert "cat/0.png" in kept and "cat/copy.png" not in kept
