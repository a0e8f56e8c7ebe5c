"""Property-based tests of upload-name sanitising, and a bounded fuzz of image decoding.

Names: whatever text an archive, a folder or a browser upload hands us, a name that
`normalize_name` accepts is relative, has no `..`, `.` or empty component, carries no
control character, and lands inside the dataset folder when joined to it.

Images: random bytes, and valid PNG / JPEG / GIF / WebP / BMP / TIFF / PPM files with
bytes flipped, cut, spliced or header fields rewritten, go through `decode_image`: the
only outcomes allowed are a Pillow image in mode L or RGB, or `ImageRejected` with a
reason. Anything else (another exception type, a crash, a wrong mode) fails.

Bounded for CI (about 20 s on 2 cores); FUZZ_EXAMPLES=5000 runs more by hand.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import struct
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from core.data.archive import memory_entries, normalize_name, zip_entries  # noqa: E402
from core.data.dataset import Dataset, DatasetError  # noqa: E402
from core.data.images import ImageRejected, decode_image  # noqa: E402
from core.data.ingest import IngestLimits, import_entries  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) or None
MAX_PIXELS = 1_000_000  # small enough that any accepted header decodes in milliseconds
RAN: Counter = Counter()  # inputs run per target, printed at the end (pytest -s)
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")


def budget(default: int):
    """hypothesis settings: `default` examples in CI, FUZZ_EXAMPLES by hand; no deadline
    (the first decode of a format imports its plugin), no database (deterministic in CI)."""
    return settings(max_examples=EXAMPLES or default, deadline=None, database=None,
                    derandomize=EXAMPLES is None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", autouse=True)
def tally():
    yield
    total = sum(RAN.values())
    parts = ", ".join(f"{name} {count}" for name, count in sorted(RAN.items()))
    print(f"\nfuzz: {total} inputs run ({parts}); 0 crashes, 0 untyped exceptions")


# --------------------------------------------------------------------------------- names

PIECES = ["..", ".", "", "a", "cat", "img.png", "C:", "c:", "\\", "/", "//", "..\\", ".\\",
          "\x00", "\x01", "\x1f", "\x7f", " ", "...", ". .", "\u2024\u2024", "\uff0e\uff0e",
          "\u212b", "e\u0301", "\udcff", "\U0001f600", "~", "$HOME", "%2e%2e", "\u202e"]
names = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.sampled_from(list("./\\:aC\x00\x01 ")), max_size=30),
    st.lists(st.sampled_from(PIECES), max_size=8).map("/".join),
    st.lists(st.sampled_from(PIECES), max_size=8).map("\\".join),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=8).map("/".join),
)


def assert_safe(name: str) -> None:
    assert name and not name.startswith("/") and "\\" not in name
    assert not (len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha())
    parts = name.split("/")
    assert all(part not in ("", ".", "..") for part in parts), name
    assert not any(ord(char) < 32 for char in name)
    root = "/workspace/datasets/pets"
    joined = posixpath.normpath(posixpath.join(root, name))
    assert joined.startswith(root + "/"), (name, joined)
    assert (Path(root) / name).is_relative_to(root)


@pytest.mark.slow  # make test only; make test-fast leaves it out
@budget(1500)
@given(names)
def test_an_accepted_name_stays_inside_its_folder(raw):
    RAN["names"] += 1
    name, problem = normalize_name(raw)
    if problem:
        assert name == raw and problem.startswith("unsafe path")
    elif name:  # "" (only separators and dots) names nothing and is never written
        assert_safe(name)


@pytest.mark.slow  # make test only; make test-fast leaves it out
@budget(1500)
@given(names)
def test_sanitising_is_idempotent(raw):
    RAN["names"] += 1
    name, problem = normalize_name(raw)
    if not problem:
        assert normalize_name(name) == (name, "")


@budget(300)
@given(st.lists(st.tuples(names, st.binary(max_size=4)), max_size=6))
def test_in_memory_upload_names_are_safe_or_carry_a_problem(pairs):
    RAN["upload names"] += len(pairs)
    for entry in memory_entries(pairs):
        if not entry.problem and entry.name:
            assert_safe(entry.name)


@budget(150)
@given(st.lists(names.filter(lambda n: "\x00" not in n), min_size=1, max_size=5))
def test_zip_member_names_are_safe_or_carry_a_problem(raw_names):
    RAN["zip names"] += len(raw_names)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for raw in raw_names:
            # a name zipfile itself cannot store ("", a lone surrogate) is no one's input
            with contextlib.suppress(UnicodeEncodeError, ValueError, IndexError):
                archive.writestr(raw, b"x")
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        for entry in zip_entries(archive):
            if not entry.problem and entry.name:
                assert_safe(entry.name)


# -------------------------------------------------------------------------------- images

def image_file(fmt: str, mode: str, size=(12, 9), **save) -> bytes:
    image = Image.new(mode, size)
    image.putdata([(i * 37) % 256 if mode in ("L", "P") else ((i * 37) % 256, i % 256, 99)
                   for i in range(size[0] * size[1])])
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def seeds() -> list[bytes]:
    """One small valid file per format and a few awkward modes; the fuzz mutates these."""
    files = [image_file("PNG", "RGB"), image_file("PNG", "L"), image_file("PNG", "P"),
             image_file("JPEG", "RGB", quality=80), image_file("JPEG", "L"),
             image_file("JPEG", "RGB", progressive=True),
             image_file("GIF", "P"), image_file("BMP", "RGB"), image_file("BMP", "P"),
             image_file("TIFF", "RGB"), image_file("TIFF", "RGB", compression="tiff_lzw"),
             image_file("PPM", "RGB")]
    try:
        files.append(image_file("WEBP", "RGB", quality=80))
        files.append(image_file("WEBP", "RGB", lossless=True))
    except (KeyError, OSError):
        pass  # Pillow without WebP: the fuzz runs on the others
    return files


SEEDS = seeds()


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "splice", "field", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        elif kind == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "field" and len(data) >= at + 4:  # a size or count field gone wild
            value = draw(st.sampled_from([0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            struct.pack_into(draw(st.sampled_from(["<I", ">I"])), data, at, value)
        elif kind == "repeat":
            data[at:at] = bytes(data[at:at + 64]) * draw(st.integers(2, 20))
    return bytes(data)


def decode_outcome(data: bytes) -> str:
    try:
        image = decode_image(data, MAX_PIXELS)
    except ImageRejected as rejected:
        assert isinstance(rejected.reason, str) and rejected.reason
        return "rejected"
    assert isinstance(image, Image.Image) and image.mode in ("L", "RGB"), image.mode
    width, height = image.size
    assert 0 < width * height <= MAX_PIXELS
    image.tobytes()  # the pixels are really there
    return "decoded"


def test_every_seed_image_decodes():
    assert [decode_outcome(data) for data in SEEDS] == ["decoded"] * len(SEEDS)


@budget(1000)
@given(st.binary(max_size=2048))
def test_random_bytes_decode_or_are_rejected(data):
    RAN["random bytes"] += 1
    decode_outcome(data)


@budget(1000)
@given(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00",
                        b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P6\n", b"P5 "]),
       st.binary(max_size=1024))
def test_random_bytes_behind_a_real_magic_number_decode_or_are_rejected(magic, rest):
    RAN["magic + random"] += 1
    decode_outcome(magic + rest)


@pytest.mark.slow  # make test only; make test-fast leaves it out
@budget(3000)
@given(mutated_images())
def test_mutated_images_decode_or_are_rejected(data):
    RAN["mutated images"] += 1
    decode_outcome(data)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_STUDIO_HOME", str(tmp_path / "ws"))
    return tmp_path / "ws"


@budget(25)
@given(st.lists(st.one_of(mutated_images(), st.binary(max_size=64)), min_size=1, max_size=6))
def test_whole_import_of_fuzzed_files_ends_in_a_dataset_or_a_dataset_error(workspace, files):
    RAN["whole imports"] += 1
    good = {f"{cls}/{i}.png": SEEDS[0] for cls in ("cat", "dog") for i in range(3)}
    fuzzed = {f"{('cat', 'dog')[i % 2]}/fuzz{i}.png": data for i, data in enumerate(files)}
    limits = IngestLimits(max_pixels=MAX_PIXELS)
    try:
        dataset = import_entries({**good, **fuzzed}.items(), "fuzz", limits=limits,
                                 overwrite=True)
    except DatasetError as error:
        assert str(error)
    else:
        assert isinstance(dataset, Dataset) and dataset.classes == ["cat", "dog"]
        assert len(dataset.items) + len(dataset.dropped) == len(good) + len(fuzzed)
    leftovers = [p.name for p in (workspace / "datasets").iterdir() if p.name != "fuzz"]
    assert leftovers == []
