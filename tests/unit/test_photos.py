"""Photo-sized data: uploads kept as their own bytes, awkward ones converted, decoding on every
core in a fixed order, and the cache's reduced-size JPEG decode equal to what inference sees.

Every input is built here with Pillow; nothing binary is committed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import core.data.cache
import core.data.ingest
import core.data.parallel
from core.data.cache import build_cache, cache_path, load_cache
from core.data.images import ImageRejected, decode_image
from core.data.ingest import import_entries
from core.data.loader import to_model_input
from core.data.transforms import fit_image
from core.serving.infer import LoadedModel

SIZE = 24  # the cache's image size: a 100×75 JPEG decodes at 1/2 scale (50×38) for it


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "workspace"
    monkeypatch.setenv("CNN_STUDIO_HOME", str(home))
    return home


def photo(seed: int, size=(100, 75), fmt: str = "JPEG", mode: str = "RGB", **save) -> bytes:
    """A small photo-like image: smooth colour plus grain, so a reduced decode differs."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8))
    pixels = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    pixels = pixels + rng.normal(0, 12, pixels.shape).astype(np.int16)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def photos(per_class: int = 6) -> dict[str, bytes]:
    return {f"{cls}/{i}.jpg": photo(10 * k + i) for k, cls in enumerate(("cat", "dog"))
            for i in range(per_class)}


def item_for(dataset, source: str):
    return next(item for item in dataset.items if item.source == source)


def model_for(channels: int = 3) -> LoadedModel:
    """Inference as a trained run does it, with a stand-in network: only the input matters."""
    card = {"image_size": SIZE, "in_chans": channels, "classes": ["cat", "dog"],
            "mean": [0.5] * channels, "std": [0.25] * channels}
    return LoadedModel("run", torch.nn.Identity(), card, torch.device("cpu"))


def cache_input(loaded: LoadedModel, rows: np.ndarray) -> torch.Tensor:
    """The cache's rows as the training loader hands them to the model (validation: no
    augmentation)."""
    mean, std = torch.tensor(loaded.card["mean"]), torch.tensor(loaded.card["std"])
    return to_model_input(torch.from_numpy(np.array(rows)), mean, std)


# ------------------------------------------------------------------------ what is stored

def test_a_plain_jpeg_or_png_is_stored_as_its_own_bytes():
    files = photos() | {"cat/flat.png": photo(99, fmt="PNG"),
                        "dog/gray.jpg": photo(98, mode="L")}
    dataset = import_entries(files.items(), "pets")
    for source, data in files.items():
        item = item_for(dataset, source)
        assert (dataset.folder / item.file).read_bytes() == data, source
        assert Path(item.file).suffix == Path(source).suffix
    assert dataset.channels == 3


def test_a_kept_jpeg_is_checked_at_every_byte_and_recorded_at_full_size():
    whole = photo(4, size=(400, 300), progressive=True)
    corrupt = bytearray(whole)
    corrupt[len(whole) // 2:len(whole) // 2 + 64] = bytes(64)  # zeros amid the scans
    files = photos() | {"cat/whole.jpg": whole, "cat/truncated.jpg": whole[:len(whole) * 3 // 4],
                        "dog/corrupt.jpg": bytes(corrupt)}
    dataset = import_entries(files.items(), "pets")
    item = item_for(dataset, "cat/whole.jpg")
    assert (item.width, item.height) == (400, 300)
    dropped = {entry["file"]: entry["reason"] for entry in dataset.dropped}
    assert "truncated" in dropped["cat/truncated.jpg"]
    assert ("dog/corrupt.jpg" in dropped) == (not full_decode_accepts(bytes(corrupt)))


def full_decode_accepts(data: bytes) -> bool:
    """Whether a full-size decode takes these bytes (the 1/8-scale check must agree)."""
    try:
        decode_image(data, 10**8)
    except ImageRejected:
        return False
    return True


def test_awkward_images_are_converted_to_clean_pngs():
    rotated = Image.open(io.BytesIO(photo(1)))
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    buffer = io.BytesIO()
    rotated.save(buffer, "JPEG", exif=exif)
    palette = Image.new("P", (20, 20), 3)
    palette.info["transparency"] = 3
    awkward = {
        "cat/cmyk.jpg": photo(2, mode="CMYK"),
        "cat/rotated.jpg": buffer.getvalue(),
        "cat/sixteen.png": png_of(Image.fromarray(np.arange(400, dtype=np.uint16)
                                                  .reshape(20, 20) * 100)),
        "dog/alpha.png": png_of(Image.new("RGBA", (20, 20), (10, 20, 30, 100))),
        "dog/palette.png": png_of(palette),
        "dog/bitmap.bmp": photo(3, fmt="BMP"),
    }
    dataset = import_entries((photos() | awkward).items(), "pets")
    for source, data in awkward.items():
        item = item_for(dataset, source)
        stored = (dataset.folder / item.file).read_bytes()
        assert item.file.endswith(".png") and stored != data, source
        assert Image.open(io.BytesIO(stored)).mode in ("L", "RGB")
    rotated_item = item_for(dataset, "cat/rotated.jpg")
    assert (rotated_item.width, rotated_item.height) == (75, 100)  # upright, as before


def png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_an_animated_image_keeps_its_first_frame_as_a_png():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((200, 0, 0), (0, 0, 200))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    dataset = import_entries((photos() | {"dog/anim.webp": buffer.getvalue()}).items(), "pets")
    item = item_for(dataset, "dog/anim.webp")
    assert item.file.endswith(".png")
    assert Image.open(dataset.folder / item.file).convert("RGB").getpixel((8, 8)) == (200, 0, 0)


# ------------------------------------------------------------------ the same pixels everywhere

def test_kept_original_bytes_give_the_pixels_inference_sees():
    files = photos()
    dataset = import_entries(files.items(), "pets")
    cache = load_cache(dataset, SIZE)
    loaded = model_for()
    for index, item in enumerate(dataset.items):
        upload = files[item.source]  # the person's own file, as they would classify it
        assert torch.equal(loaded.to_batch([loaded.open(upload)]),
                           cache_input(loaded, cache[index:index + 1])), item.source


def test_draft_decoding_in_the_cache_equals_what_inference_computes(tmp_path):
    dataset = import_entries(photos().items(), "pets")
    cache = load_cache(dataset, SIZE)
    loaded = model_for()
    moved = 0
    for index, item in enumerate(dataset.items):
        path = dataset.folder / item.file
        assert torch.equal(loaded.to_batch([loaded.open(path)]),
                           cache_input(loaded, cache[index:index + 1])), item.file
        with Image.open(path) as full:  # the full-size decode: a little different pixels
            moved += not np.array_equal(fit_image(full, SIZE, 3), cache[index])
    assert moved == len(dataset.items)  # so the reduced-size decode is what both paths ran


def test_draft_decoding_keeps_both_sides_at_least_the_target():
    image = decode_image(photo(5, size=(400, 300)), 10**8, draft_to=SIZE)
    assert image.size == (50, 38)  # 1/8 scale: the smallest with both sides >= 24
    assert decode_image(photo(5, size=(400, 300)), 10**8).size == (400, 300)
    assert decode_image(photo(5, size=(30, 20)), 10**8, draft_to=SIZE).size == (30, 20)


# ------------------------------------------------------------------------- every core

def test_a_parallel_import_stores_what_a_one_process_import_stores(monkeypatch):
    half = photo(9, size=(300, 200))
    files = photos(per_class=20) | {"cat/broken.jpg": photo(7)[:300],
                                    "cat/half.jpg": half[:len(half) // 2],
                                    "dog/cmyk.jpg": photo(8, mode="CMYK")}
    one = import_entries(files.items(), "one")
    monkeypatch.setattr(core.data.ingest, "PARALLEL_MIN_FILES", 0)
    monkeypatch.setattr(core.data.parallel, "CHUNK", 3)  # many chunks in flight, out of step
    many = import_entries(files.items(), "many")
    assert [vars(item) for item in many.items] == [vars(item) for item in one.items]
    assert many.dropped == one.dropped
    assert {"cat/broken.jpg", "cat/half.jpg"} <= {item["file"] for item in one.dropped}
    assert many.content_hash == one.content_hash
    for item in one.items:
        assert (many.folder / item.file).read_bytes() == (one.folder / item.file).read_bytes()


def test_a_parallel_cache_build_equals_a_one_process_build(monkeypatch):
    dataset = import_entries(photos(per_class=15).items(), "pets")
    one = np.load(build_cache(dataset, SIZE))
    cache_path(dataset, SIZE).unlink()
    monkeypatch.setattr(core.data.cache, "PARALLEL_MIN_PIXELS", 0)
    monkeypatch.setattr(core.data.cache, "CHUNK_PIXELS", 1)  # 8 files a task: several tasks
    seen = []
    many = np.load(build_cache(dataset, SIZE, lambda done, total: seen.append((done, total))))
    assert np.array_equal(many, one)
    assert seen[-1] == (len(dataset.items), len(dataset.items))


def test_bench_photos_reports_every_step_in_one_run(capsys):
    import json

    from core.__main__ import main

    assert main(["bench", "photos", "--images", "12", "--size", "120x90",
                 "--image-size", "32", "--repeat", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    steps = [row["step"] for row in rows]
    assert [step.split(" ")[0] for step in steps] == ["plain", "import", "plain", "cache",
                                                      "disk:", "cache"]
    assert all(row["images_per_s"] > 0 for row in rows[:4])
    assert rows[4]["value"] <= 1.15  # kept JPEGs: the dataset is about the upload's size
    assert 25 < rows[5]["value"] < 80  # the reduced-size decode moves pixels, a little
