"""The dataset importer: layout, hostile uploads, junk, awkward images, whole-set rules.

Every input is built here with Pillow and zipfile; nothing binary is committed.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from upload_files import patch_central, zip_bytes

from core.data.archive import Entry
from core.data.dataset import DatasetError
from core.data.images import ImageRejected, decode_image
from core.data.ingest import IngestLimits, import_dataset, import_entries, read_entry

COLOURS = {"cat": (220, 30, 30), "dog": (30, 30, 220), "eel": (30, 200, 30)}


# ------------------------------------------------------------------------------ helpers

@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "workspace"
    monkeypatch.setenv("CNN_STUDIO_HOME", str(home))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # a stray relative write would land here
    return home


def image_bytes(mode: str = "RGB", size=(8, 8), colour=(220, 30, 30), fmt: str = "PNG",
                **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, fmt, **save)
    return buffer.getvalue()


def classes(*names: str, per_class: int = 5, prefix: str = "", mode: str = "RGB") -> dict:
    """{"prefix/cat/0.png": bytes, ...}: enough images per class for train/val/test."""
    files = {}
    for cls in names:
        colour = COLOURS[cls] if mode == "RGB" else 40 + 40 * len(files) % 200
        for i in range(per_class):
            files[f"{prefix}{cls}/{i}.png"] = image_bytes(mode, colour=colour)
    return files


def write_zip(tmp_path: Path, files: dict[str, bytes], name: str = "upload.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(zip_bytes(files))
    return path


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def reasons(dataset) -> dict[str, str]:
    return {item["file"]: item["reason"] for item in dataset.dropped}


def stored(dataset, source: str) -> Image.Image:
    item = next(item for item in dataset.items if item.source == source)
    return Image.open(dataset.folder / item.file)


def png_header_only(width: int, height: int) -> bytes:
    """A 1-bit PNG that declares width x height but carries almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + checksum
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


def leftovers(home: Path) -> list[str]:
    folder = home / "datasets"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------------------- layout

def test_zip_in_imagefolder_layout_imports_every_class(tmp_path):
    dataset = import_dataset(write_zip(tmp_path, classes("dog", "cat")), "pets")
    assert dataset.classes == ["cat", "dog"]  # sorted by name
    assert dataset.counts() == {"cat": 5, "dog": 5}
    assert dataset.split_counts() == {"train": 6, "val": 2, "test": 2}
    assert (dataset.folder / "manifest.json").exists() and dataset.dropped == []


def test_folder_imports_like_a_zip(tmp_path):
    folder = write_folder(tmp_path / "pets", classes("cat", "dog"))
    assert import_dataset(folder, "pets").counts() == {"cat": 5, "dog": 5}


def test_csv_of_path_and_label_imports_relative_and_absolute_paths(tmp_path):
    write_folder(tmp_path / "pics", classes("cat", "dog"))
    rows = ["path,label"] + [f"pics/cat/{i}.png,kitty" for i in range(5)]
    rows += [f"{tmp_path}/pics/dog/{i}.png,puppy" for i in range(5)]
    rows += ["pics/missing.png,kitty", "just-one-column"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    dataset = import_dataset(tmp_path / "labels.csv", "csv")
    assert dataset.counts() == {"kitty": 5, "puppy": 5}
    assert reasons(dataset)["pics/missing.png"] == "file not found"
    assert "two columns" in reasons(dataset)["labels.csv line 13"]


def test_csv_without_header_row_imports(tmp_path):
    write_folder(tmp_path, classes("cat", "dog"))
    rows = [f"{cls}/{i}.png,{cls}" for cls in ("cat", "dog") for i in range(5)]
    (tmp_path / "labels.csv").write_text("\n".join(rows))
    assert import_dataset(tmp_path / "labels.csv", "csv").counts() == {"cat": 5, "dog": 5}


def test_common_prefix_folders_are_stripped(tmp_path):
    files = classes("cat", "dog", prefix="archive/data/train/")
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert dataset.classes == ["cat", "dog"]


def test_files_at_the_root_are_dropped(tmp_path):
    files = {**classes("cat", "dog", prefix="top/"), "top/stray.png": image_bytes()}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert "class folder" in reasons(dataset)["top/stray.png"]
    assert dataset.classes == ["cat", "dog"]


def test_deeper_nesting_uses_first_folder_as_class(tmp_path):
    files = {**classes("cat", "dog"), "cat/indoor/sofa/a.png": image_bytes()}
    assert import_dataset(write_zip(tmp_path, files), "pets").counts()["cat"] == 6


def test_import_entries_builds_classes_from_memory():
    entries = list(classes("cat", "dog").items())
    dataset = import_entries(entries, "memory")
    assert dataset.counts() == {"cat": 5, "dog": 5}


def test_uploaded_zip_file_object_imports():
    upload = io.BytesIO(zip_bytes(classes("cat", "dog")))
    assert import_dataset(upload, "pets").counts() == {"cat": 5, "dog": 5}


def test_progress_reports_done_out_of_total(tmp_path):
    calls = []
    import_dataset(write_zip(tmp_path, classes("cat", "dog")), "pets",
                   progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 10) and calls[-1] == (10, 10)


# ------------------------------------------------------------------------------- safety

def test_zip_with_parent_path_is_rejected(tmp_path):
    files = {**classes("cat", "dog"), "../escape.png": image_bytes()}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert "unsafe path" in reasons(dataset)["../escape.png"]
    assert not (tmp_path / "escape.png").exists()


def test_zip_with_absolute_path_is_rejected(tmp_path):
    files = {**classes("cat", "dog"), "/etc/cnn-studio-escape.png": image_bytes()}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert "absolute" in reasons(dataset)["/etc/cnn-studio-escape.png"]
    assert not Path("/etc/cnn-studio-escape.png").exists()


def test_zip_with_nested_parent_path_is_rejected(tmp_path):
    files = {**classes("cat", "dog"), "cat/../../escape.png": image_bytes()}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    assert "unsafe path" in reasons(dataset)["cat/../../escape.png"]
    assert dataset.counts() == {"cat": 5, "dog": 5}


def test_zip_with_backslash_traversal_or_drive_letter_is_rejected(tmp_path):
    hostile = ["cat\\..\\..\\escape.png", "C:\\escape.png", "D:/escape.png"]
    files = {**classes("cat", "dog"), **{name: image_bytes() for name in hostile}}
    dropped = reasons(import_dataset(write_zip(tmp_path, files), "pets"))
    assert all("unsafe path" in dropped[name] for name in hostile)


def test_zip_symlink_entry_is_dropped(tmp_path):
    buffer = io.BytesIO(zip_bytes(classes("cat", "dog")))
    with zipfile.ZipFile(buffer, "a") as archive:
        link = zipfile.ZipInfo("cat/link.png")
        link.create_system = 3  # unix
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    dataset = import_dataset(io.BytesIO(buffer.getvalue()), "pets")
    assert "symbolic link" in reasons(dataset)["cat/link.png"]
    assert dataset.counts()["cat"] == 5


def test_folder_symlinks_are_not_followed(tmp_path):
    outside = write_folder(tmp_path / "outside", {"secret.png": image_bytes(), "a/b.png": b""})
    folder = write_folder(tmp_path / "pets", classes("cat", "dog"))
    (folder / "cat" / "link.png").symlink_to(outside / "secret.png")
    (folder / "linked-class").symlink_to(outside / "a", target_is_directory=True)
    dataset = import_dataset(folder, "pets")
    assert dataset.classes == ["cat", "dog"]
    dropped = reasons(dataset)
    assert "symbolic link" in dropped["cat/link.png"] and "symbolic link" in dropped["linked-class"]


def test_folder_special_files_are_dropped_without_blocking(tmp_path):
    folder = write_folder(tmp_path / "pets", classes("cat", "dog"))
    os.mkfifo(folder / "cat" / "pipe.png")
    assert reasons(import_dataset(folder, "pets"))["cat/pipe.png"] == "not a regular file"


def test_zip_bomb_by_declared_total_size_is_refused(tmp_path, workspace):
    files = {**classes("cat", "dog"), "cat/huge1.png": b"x", "cat/huge2.png": b"x"}
    data = zip_bytes(files)
    for name in ("cat/huge1.png", "cat/huge2.png"):  # ~8 GiB declared, default 4 GiB cap
        data = patch_central(data, name, size=0xFFFF_FFF0)
    with pytest.raises(DatasetError, match="GiB"):
        import_dataset(io.BytesIO(data), "pets")
    assert leftovers(workspace) == []


def test_streamed_zip_bomb_is_refused_before_anything_is_read(tmp_path, workspace):
    buffer = io.BytesIO(zip_bytes(classes("cat", "dog")))
    with (zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
          archive.open("cat/bomb.bmp", "w", force_zip64=True) as member):
        for _ in range(40):  # 320 MiB of zeros, streamed; ~1.4 MB compressed
            member.write(bytes(8 << 20))
    limits = IngestLimits(max_total_bytes=256 << 20)
    with pytest.raises(DatasetError, match="zip bomb"):
        import_dataset(io.BytesIO(buffer.getvalue()), "pets", limits=limits)
    assert leftovers(workspace) == []


def test_over_compressed_entry_is_dropped(tmp_path):
    files = {**classes("cat", "dog"), "cat/flat.bmp": bytes(4 << 20)}
    data = zip_bytes(files, zipfile.ZIP_DEFLATED)
    dataset = import_dataset(io.BytesIO(data), "pets")
    assert "compressed" in reasons(dataset)["cat/flat.bmp"]


def test_too_many_entries_refuses_the_archive(tmp_path, workspace):
    limits = IngestLimits(max_entries=8)
    files = classes("cat", "dog")
    with pytest.raises(DatasetError, match="more than 8 files"):
        import_dataset(write_zip(tmp_path, files), "a", limits=limits)
    with pytest.raises(DatasetError, match="more than 8 files"):
        import_dataset(write_folder(tmp_path / "folder", files), "b", limits=limits)
    with pytest.raises(DatasetError, match="more than 8 files"):
        import_entries(files.items(), "c", limits=limits)
    assert leftovers(workspace) == []


def test_file_over_the_size_limit_is_dropped_unread(tmp_path):
    files = {**classes("cat", "dog"), "dog/big.png": image_bytes(size=(64, 64))}
    small = max(len(data) for name, data in files.items() if name != "dog/big.png")
    limits = IngestLimits(max_file_bytes=small)
    dataset = import_entries(files.items(), "pets", limits=limits)
    assert "over the limit" in reasons(dataset)["dog/big.png"]


def test_zip_member_with_a_forged_small_size_is_dropped(tmp_path):
    files = {**classes("cat", "dog"), "cat/forged.png": image_bytes(size=(64, 64))}
    data = patch_central(zip_bytes(files), "cat/forged.png", size=40)
    dataset = import_dataset(io.BytesIO(data), "pets")
    assert "cat/forged.png" in reasons(dataset) and dataset.counts()["cat"] == 5


def test_reads_are_capped_at_the_declared_size():
    asked = []

    def liar(at_most: int) -> bytes:
        asked.append(at_most)
        return bytes(10 * at_most)  # hands back far more than asked

    with pytest.raises(ImageRejected, match="more bytes than its header declares"):
        read_entry(Entry("cat/a.png", size=100, read=liar))
    assert asked == [101]


def test_encrypted_zip_member_is_dropped(tmp_path):
    data = patch_central(zip_bytes(classes("cat", "dog")), "cat/0.png", flags=0x1)
    assert "encrypted" in reasons(import_dataset(io.BytesIO(data), "pets"))["cat/0.png"]


def test_pixel_bomb_header_is_dropped_before_decoding():
    files = {**classes("cat", "dog"), "cat/bomb.png": png_header_only(20_000, 20_000)}
    dataset = import_entries(files.items(), "pets")
    assert "pixels" in reasons(dataset)["cat/bomb.png"]


def test_image_over_the_pixel_limit_is_dropped():
    files = {**classes("cat", "dog"), "cat/big.png": image_bytes(size=(300, 300))}
    dataset = import_entries(files.items(), "pets", limits=IngestLimits(max_pixels=10_000))
    assert "over the limit of 10,000" in reasons(dataset)["cat/big.png"]


# --------------------------------------------------------------------------------- junk

def test_truncated_jpeg_is_dropped():
    jpeg = image_bytes(size=(64, 64), fmt="JPEG")
    files = {**classes("cat", "dog"), "cat/cut.jpg": jpeg[: len(jpeg) // 2]}
    assert "truncated" in reasons(import_entries(files.items(), "pets"))["cat/cut.jpg"]


def test_text_named_jpg_is_dropped():
    files = {**classes("cat", "dog"), "cat/notes.jpg": b"these are not pixels\n"}
    assert "not an image" in reasons(import_entries(files.items(), "pets"))["cat/notes.jpg"]


def test_macos_and_windows_clutter_is_dropped(tmp_path):
    clutter = ["__MACOSX/cat/._0.png", "cat/.DS_Store", "dog/Thumbs.db", "dog/._1.png"]
    files = {**classes("cat", "dog"), **{name: b"\x00\x05\x16\x07" for name in clutter}}
    dataset = import_dataset(write_zip(tmp_path, files), "pets")
    dropped = reasons(dataset)
    assert "__MACOSX" in dropped["__MACOSX/cat/._0.png"]
    assert "system file" in dropped["cat/.DS_Store"] and "system file" in dropped["dog/Thumbs.db"]
    assert "hidden" in dropped["dog/._1.png"]
    assert dataset.counts() == {"cat": 5, "dog": 5}


def test_hidden_folders_are_skipped_in_a_folder_upload(tmp_path):
    folder = write_folder(tmp_path / "pets", {**classes("cat", "dog"), ".git/x.png": b"x"})
    assert "hidden" in reasons(import_dataset(folder, "pets"))[".git/"]


def test_nested_zip_is_dropped_as_nested_archive():
    inner = zip_bytes(classes("cat"))
    files = {**classes("cat", "dog"), "cat/more.zip": inner, "dog/sneaky.png": inner}
    dropped = reasons(import_entries(files.items(), "pets"))
    assert "nested archive" in dropped["cat/more.zip"]
    assert "nested archive" in dropped["dog/sneaky.png"]


def test_zero_byte_file_is_dropped():
    files = {**classes("cat", "dog"), "cat/empty.jpg": b""}
    assert "empty" in reasons(import_entries(files.items(), "pets"))["cat/empty.jpg"]


def test_non_image_extension_is_dropped():
    files = {**classes("cat", "dog"), "cat/readme.txt": b"hello", "dog/model.eps": b"%!PS"}
    dropped = reasons(import_entries(files.items(), "pets"))
    assert dropped["cat/readme.txt"] == "not an image file (.txt)"
    assert dropped["dog/model.eps"] == "not an image file (.eps)"


def test_cp437_zip_name_is_decoded_without_crashing():
    data = zip_bytes(classes("cat", "dog")).replace(b"cat/", b"ca\x82/")  # é in cp437
    dataset = import_dataset(io.BytesIO(data), "pets")
    assert dataset.classes == ["caé", "dog"]


def test_utf8_zip_name_without_its_flag_is_recovered():
    nihon = "日本".encode()  # six bytes, like the ASCII placeholder it replaces
    files = {**classes("dog"), **{f"XXXXXX/{i}.png": image_bytes() for i in range(5)}}
    data = zip_bytes(files).replace(b"XXXXXX/", nihon + b"/")
    assert import_dataset(io.BytesIO(data), "pets").classes == ["dog", "日本"]


def test_zip_name_falsely_flagged_utf8_is_refused_cleanly():
    files = {**classes("dog"), **{f"é/{i}.png": image_bytes() for i in range(5)}}
    data = zip_bytes(files).replace("é/".encode(), b"\xff\xfe/")  # same length, not UTF-8
    with pytest.raises(DatasetError, match="UTF-8"):
        import_dataset(io.BytesIO(data), "pets")


def test_corrupted_zip_bytes_raise_only_dataset_error(workspace):
    good = zip_bytes(classes("cat", "dog", per_class=4), zipfile.ZIP_DEFLATED)
    rng = random.Random(0)
    for attempt in range(60):
        data = bytearray(good)
        if attempt % 3 == 0:
            data = data[: rng.randrange(len(data))]
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(DatasetError):  # any other exception type fails the test
            import_dataset(io.BytesIO(bytes(data)), f"fuzz{attempt}")
    assert not [name for name in leftovers(workspace) if name.startswith(".")]


def test_not_a_zip_or_missing_source_is_refused(tmp_path):
    (tmp_path / "fake.zip").write_text("not a zip")
    (tmp_path / "notes.txt").write_text("hello")
    for source, message in [(tmp_path / "fake.zip", "not a readable zip"),
                            (tmp_path / "nowhere", "does not exist"),
                            (tmp_path / "notes.txt", "not a .zip")]:
        with pytest.raises(DatasetError, match=message):
            import_dataset(source, "pets")


def test_bad_or_taken_dataset_name_is_refused(tmp_path):
    upload = write_zip(tmp_path, classes("cat", "dog"))
    with pytest.raises(DatasetError, match="not allowed"):
        import_dataset(upload, "../escape")
    import_dataset(upload, "pets")
    with pytest.raises(DatasetError, match="already exists"):
        import_dataset(upload, "pets")


def test_bad_split_fractions_are_refused_before_reading(tmp_path):
    upload = write_zip(tmp_path, classes("cat", "dog"))
    with pytest.raises(DatasetError, match="too little to train"):
        import_dataset(upload, "pets", val=0.5, test=0.5)


# -------------------------------------------------------------------- awkward but valid

def test_cmyk_jpeg_becomes_rgb():
    image = decode_image(image_bytes("CMYK", colour=(0, 255, 255, 0), fmt="JPEG"), 10_000)
    red, green, blue = image.getpixel((4, 4))
    assert image.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_palette_with_transparency_is_composited_on_white():
    palette = Image.new("P", (4, 2))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putdata([0, 0, 1, 1] * 2)
    buffer = io.BytesIO()
    palette.save(buffer, "PNG", transparency=1)
    image = decode_image(buffer.getvalue(), 10_000)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 0, 0) and image.getpixel((3, 0)) == (255, 255, 255)


def test_rgba_is_composited_on_white():
    image = decode_image(image_bytes("RGBA", colour=(255, 0, 0, 128)), 10_000)
    red, green, blue = image.getpixel((0, 0))
    assert image.mode == "RGB" and red == 255 and 120 <= green == blue <= 135


def test_grayscale_with_alpha_and_one_bit_stay_grayscale():
    assert decode_image(image_bytes("LA", colour=(0, 0)), 10_000).getpixel((0, 0)) == 255
    assert decode_image(image_bytes("1", colour=1), 10_000).mode == "L"


def test_16bit_gradient_keeps_its_gradient():
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    files = {**classes("dog", mode="L"), **{f"cat/{i}.png": buffer.getvalue() for i in range(5)}}
    dataset = import_entries(files.items(), "scans")
    pixels = np.asarray(stored(dataset, "cat/0.png"))
    assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) == 256
    assert (np.diff(pixels.ravel().astype(int)) >= 0).all()  # still a ramp, not clipped flat


def test_grayscale_only_set_has_one_channel():
    dataset = import_entries(classes("cat", "dog", mode="L").items(), "gray")
    assert dataset.channels == 1 and stored(dataset, "cat/0.png").mode == "L"


def test_mixed_set_has_three_channels():
    files = {**classes("cat", mode="L"), **classes("dog")}
    assert import_entries(files.items(), "mixed").channels == 3


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    files = {**classes("cat", "dog"),
             "cat/phone.jpg": image_bytes(size=(20, 10), fmt="JPEG", exif=exif.tobytes())}
    dataset = import_entries(files.items(), "pets")
    assert stored(dataset, "cat/phone.jpg").size == (10, 20)


def test_animated_gif_keeps_its_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    files = {**classes("cat", "dog"), "cat/anim.gif": buffer.getvalue()}
    image = stored(import_entries(files.items(), "pets"), "cat/anim.gif")
    assert image.convert("RGB").getpixel((4, 4)) == (255, 0, 0)


# ----------------------------------------------------------------------- whole-set rules

def test_one_class_only_is_refused_with_what_to_fix(tmp_path, workspace):
    files = {**classes("cat", prefix="photos/"), "photos/cat/notes.txt": b"x"}
    with pytest.raises(DatasetError, match="one class only \\('cat'\\).*own folder.*notes.txt"):
        import_dataset(write_zip(tmp_path, files), "pets")
    assert leftovers(workspace) == []


def test_too_small_class_is_refused(tmp_path, workspace):
    files = {**classes("cat"), **classes("dog", per_class=2)}
    with pytest.raises(DatasetError, match="too few images.*'dog' \\(2\\)"):
        import_dataset(write_zip(tmp_path, files), "pets")
    assert leftovers(workspace) == []


def test_upload_with_nothing_usable_lists_the_drop_reasons():
    files = {"cat/a.jpg": b"text", "dog/b.jpg": b"text", "readme.md": b"# hi"}
    with pytest.raises(DatasetError, match="no usable images.*Dropped 3 file"):
        import_entries(files.items(), "pets")


def test_failed_import_leaves_no_folder_behind(tmp_path, workspace):
    files = {**classes("cat"), **{f"dog/{i}.jpg": b"not a jpeg" for i in range(5)}}
    with pytest.raises(DatasetError, match="one class only"):  # found only after decoding
        import_dataset(write_zip(tmp_path, files), "pets")
    assert leftovers(workspace) == []
    assert not (workspace / "datasets" / "pets").exists()


def test_hostile_zip_writes_nothing_outside_the_workspace(tmp_path, workspace):
    hostile = ["../../escape.png", "/tmp/cnn-studio-escape.png", "cat/../../escape.png"]
    files = {**classes("cat", "dog"), **{name: image_bytes() for name in hostile}}
    upload = write_zip(tmp_path, files)
    before = {p for p in tmp_path.rglob("*") if workspace not in p.parents and p != workspace}
    import_dataset(upload, "pets")
    after = {p for p in tmp_path.rglob("*") if workspace not in p.parents and p != workspace}
    assert after == before and not Path("/tmp/cnn-studio-escape.png").exists()
    written = {p.relative_to(workspace).parts[:2] for p in workspace.rglob("*") if p.is_file()}
    assert written == {("datasets", "pets")}
