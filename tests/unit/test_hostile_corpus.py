"""The hostile-upload sweep: every nasty archive, folder, CSV and image we can think of,
imported into its own workspace. Each one is refused with a DatasetError or imported with
the bad entries dropped and listed; nothing is written outside `<ws>/datasets/<name>/`;
the workspace stays under the import's caps. test_ingest.py pins each rule one at a
time; this file is the bulk "nothing escapes" check, and prints a one-line tally (-s).

Every input is generated here; no binary fixture is committed.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image
from upload_files import patch_central, png, zip_bytes

from core.data.dataset import Dataset, DatasetError
from core.data.ingest import IngestLimits, import_dataset, import_entries

MiB = 1 << 20
ESCAPE = "cnn-escape"  # every name meant to land outside carries this, so a search finds it
# Small caps so the corpus stays fast; the 100k-entry cases use the default entry cap.
LIMITS = IngestLimits(max_total_bytes=24 * MiB, max_file_bytes=4 * MiB, max_pixels=4_000_000,
                      max_written_bytes=8 * MiB)
TALLY: Counter = Counter()
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")


@dataclass
class Case:
    source: object  # a path (zip, folder, csv), a binary file object, or [(name, bytes)]
    expect: str  # "refused", "cleaned" (bad entries dropped and listed) or "accepted"
    hostile: list[str] = field(default_factory=list)  # names that must be listed as dropped
    limits: IngestLimits = field(default_factory=lambda: LIMITS)
    min_dropped: int = 0
    refusal: str = ""  # a regex the refusal message must match


CASES: dict[str, Callable[[Path], Case]] = {}


SLOW_CASES: set[str] = set()  # make test only; make test-fast leaves them out


def case(name: str, slow: bool = False):
    def register(build: Callable[[Path], Case]) -> Callable[[Path], Case]:
        CASES[name] = build
        if slow:
            SLOW_CASES.add(name)
        return build
    return register


# ----------------------------------------------------------------------------- builders

def jpeg(size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def base(per_class: int = 5) -> dict[str, bytes]:
    """Two clean classes, enough for a train/val/test split."""
    return {f"{cls}/{i}.png": png(colour) for cls, colour in
            (("cat", (220, 30, 30)), ("dog", (30, 30, 220))) for i in range(per_class)}


def save(folder: Path, data: bytes, name: str = "upload.zip") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def zip_case(src: Path, hostile: dict[str, bytes], expect: str = "cleaned", **kw) -> Case:
    return Case(save(src, zip_bytes({**base(), **hostile})), expect, list(hostile), **kw)


def png_header(width: int, height: int) -> bytes:
    """A PNG declaring width x height that carries almost no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


def gif_header(width: int, height: int) -> bytes:
    return (b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + bytes(6)
            + b"," + struct.pack("<HHHH", 0, 0, width, height) + b"\x00\x02\x02\x44\x01\x00;")


def bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) + info + bytes(64)


def tiff_header(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (279, 4, 1, 64)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", *entry) for entry in entries) + bytes(4)
    return b"II*\x00" + struct.pack("<I", 8 + 64) + bytes(64) + ifd


# ---------------------------------------------------------------------------- zip paths

@case("zip: relative parent paths")
def _(src):
    return zip_case(src, {f"../{ESCAPE}.png": png(), f"../../{ESCAPE}.png": png(),
                          f"../../../../../../../tmp/{ESCAPE}.png": png()})


@case("zip: absolute paths")
def _(src):
    return zip_case(src, {f"/tmp/{ESCAPE}.png": png(), f"//server/share/{ESCAPE}.png": png(),
                          f"/cat/{ESCAPE}.png": png()})


@case("zip: nested parent paths")
def _(src):
    return zip_case(src, {f"cat/../../{ESCAPE}.png": png(), f"cat/./../../../{ESCAPE}.png": png(),
                          f"dog/a/b/../../../../{ESCAPE}.png": png(),
                          f"cat/..//..//{ESCAPE}.png": png()})


@case("zip: backslash and drive-letter paths")
def _(src):
    return zip_case(src, {f"..\\..\\{ESCAPE}.png": png(), f"C:\\{ESCAPE}.png": png(),
                          f"C:{ESCAPE}.png": png(), f"cat\\..\\..\\{ESCAPE}.png": png(),
                          f"./C:/{ESCAPE}.png": png(), f"\\\\server\\{ESCAPE}.png": png()})


@case("zip: control characters in names")
def _(src):
    return zip_case(src, {"cat/a\x01b.png": png(), "dog/\x1b[31mred.png": png(),
                          "cat/new\nline.png": png(), "dog/tab\t.png": png()})


@case("zip: symbolic link entries")
def _(src):
    files = base()
    data = zip_bytes({**files, "cat/link.png": b"/etc/passwd", "dog/linkdir": b"/tmp",
                      f"dog/linkdir/{ESCAPE}.png": png()})
    link = (stat.S_IFLNK | 0o777) << 16
    for name in ("cat/link.png", "dog/linkdir"):
        data = patch_central(data, name, attr=link)
    # dog/linkdir/x.png is a plain member: nothing is extracted, so it cannot go through the link
    return Case(save(src, data), "cleaned", ["cat/link.png", "dog/linkdir"])


# ---------------------------------------------------------------------------- zip bombs

@case("zip bomb: one over-compressed member (ratio)")
def _(src):
    data = zip_bytes({**base(), "cat/bomb.bmp": bytes(3 * MiB), "dog/bomb.tif": bytes(2 * MiB)},
                     zipfile.ZIP_DEFLATED)
    return Case(save(src, data), "cleaned", ["cat/bomb.bmp", "dog/bomb.tif"])


@case("zip bomb: declared sizes over the total cap")
def _(src):
    data = zip_bytes({**base(), "cat/huge1.png": b"x", "cat/huge2.png": b"x"})
    for name in ("cat/huge1.png", "cat/huge2.png"):
        data = patch_central(data, name, size=0xFFFF_FFF0)
    return Case(save(src, data), "refused", refusal="zip bomb")


@case("zip bomb: streamed zeros over the total cap")
def _(src):
    buffer = io.BytesIO(zip_bytes(base()))
    with (zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
          archive.open("cat/bomb.bmp", "w", force_zip64=True) as member):
        for _ in range(5):  # 40 MiB of zeros, ~40 KB compressed
            member.write(bytes(8 * MiB))
    return Case(save(src, buffer.getvalue()), "refused", refusal="zip bomb")


@case("zip bomb: overlapping members (one local file, many directory entries)")
def _(src):
    data = zip_bytes({"cat/000.bmp": bytes(2 * MiB)}, zipfile.ZIP_DEFLATED)
    end = data.rfind(b"PK\x05\x06")
    offset = struct.unpack_from("<I", data, end + 16)[0]  # where the central directory starts
    central = data[offset:end]
    records = [central.replace(b"cat/000.bmp", f"{cls}/{i:03d}.bmp".encode())
               for cls in ("cat", "dog") for i in range(40)]
    directory = b"".join(records)
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(records), len(records),
                       len(directory), offset, 0)
    return Case(save(src, data[:offset] + directory + eocd), "refused",
                refusal="zip bomb")


@case("zip: nested archives")
def _(src):
    inner = zip_bytes(base())
    return zip_case(src, {"cat/inner.zip": inner, "dog/inner.png": inner, "cat/inner.jpg": inner,
                          "cat/x.tar.gz": b"\x1f\x8b", "dog/inner.7z": b"7z\xbc\xaf\x27\x1c"})


@case("zip: 100k tiny entries over a lowered entry cap")
def _(src):
    return Case(save(src, hundred_k_zip()), "refused",
                limits=IngestLimits(max_entries=50_000), refusal="more than 50,000 files")


@case("zip: 100k tiny entries under the default caps", slow=True)
def _(src):
    return Case(save(src, hundred_k_zip()), "cleaned",
                limits=IngestLimits(max_written_bytes=8 * MiB), min_dropped=100_000)


def hundred_k_zip() -> bytes:
    """100,000 empty or one-byte members next to a small clean set (zip64 directory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in base().items():
            archive.writestr(name, data)
        for i in range(100_000):
            archive.writestr(f"cat/t{i}.png" if i % 2 else f"dog/t{i}.txt", b"" if i % 4 else b"x")
    return buffer.getvalue()


@case("zip: images that decode past the written-bytes cap")
def _(src):
    rng = random.Random(7)
    files = {}
    for i in range(12):  # ~100 KB of noisy CMYK JPEG each → converted: ~3 MB of PNG each
        noise = Image.frombytes("RGB", (1000, 1000), rng.randbytes(3_000_000))
        buffer = io.BytesIO()
        noise.convert("CMYK").save(buffer, "JPEG", quality=5)  # an RGB one would be kept as is
        files[f"{('cat', 'dog')[i % 2]}/{i}.jpg"] = buffer.getvalue()
    return Case(save(src, zip_bytes(files)), "refused", refusal="on disk")


# -------------------------------------------------------------------------- zip images

@case("zip: pixel bombs (headers declaring huge images)")
def _(src):
    return zip_case(src, {"cat/bomb.png": png_header(100_000, 100_000),
                          "dog/bomb.gif": gif_header(65_535, 65_535),
                          "cat/bomb.bmp": bmp_header(60_000, 60_000),
                          "dog/bomb.tif": tiff_header(50_000, 50_000),
                          "cat/wide.png": png_header(2**31 - 1, 1)})


@case("zip: truncated and corrupt images")
def _(src):
    good_png, good_jpeg = png(size=(64, 64)), jpeg(size=(64, 64))
    rng = random.Random(3)
    return zip_case(src, {"cat/half.png": good_png[:len(good_png) // 2],
                          "dog/half.jpg": good_jpeg[:len(good_jpeg) // 2],
                          "cat/garbage.png": good_png[:16] + rng.randbytes(400),
                          "dog/header.jpg": good_jpeg[:20],
                          "cat/magic.gif": b"GIF89a", "dog/zero.bmp": b"BM" + bytes(60)})


@case("zip: text and documents named as images")
def _(src):
    return zip_case(src, {"cat/readme.jpg": b"hello, not an image\n",
                          "dog/page.png": b"<!doctype html><html><body>hi</body></html>",
                          "cat/vector.png": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
                          "dog/doc.jpg": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
                          "cat/script.jpg": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n",
                          "dog/exe.png": b"\x7fELF\x02\x01\x01" + bytes(64),
                          "cat/empty.png": b""})


@case("zip: clutter (macOS, Windows, hidden files)")
def _(src):
    return zip_case(src, {"__MACOSX/cat/._0.png": png(), "cat/.DS_Store": b"\0\0\0\1Bud1",
                          "dog/Thumbs.db": b"\xd0\xcf\x11\xe0", "cat/._1.png": png(),
                          ".hidden/x.png": png(), "dog/.git/config.png": png(),
                          "notes.txt": b"notes", "dog/labels.csv": b"a,b"})


@case("zip: forged small size and encrypted flag")
def _(src):
    files = {**base(), "cat/forged.png": png(size=(64, 64)), "dog/locked.png": png()}
    data = patch_central(zip_bytes(files), "cat/forged.png", size=40)
    data = patch_central(data, "dog/locked.png", flags=0x1)
    return Case(save(src, data), "cleaned", ["cat/forged.png", "dog/locked.png"])


# --------------------------------------------------------------------- zip names, classes

def raw_name_zip(files: dict[bytes, bytes], utf8_flag: bool) -> bytes:
    """A zip whose member names are the given raw bytes (zipfile would re-encode them)."""
    placeholders = {f"p{i:0{len(raw) - 1}d}"[:len(raw)]: raw for i, raw in enumerate(files)}
    assert all(len(p) == len(raw) for p, raw in placeholders.items())
    data = zip_bytes({**base(), **{p: files[raw] for p, raw in placeholders.items()}})
    for placeholder, raw in placeholders.items():
        data = data.replace(placeholder.encode(), raw)
        if utf8_flag:
            data = patch_central(data, raw, flags=0x800)
    return data


@case("zip: non-UTF-8 names without the UTF-8 flag (cp437)")
def _(src):
    data = raw_name_zip({b"cat/\xff\xfe\x81.png": png(), b"dog/\x8e\x99\xe1.png": png()},
                        utf8_flag=False)
    return Case(save(src, data), "accepted")


@case("zip: names falsely flagged UTF-8")
def _(src):
    data = raw_name_zip({b"cat/\xff\xfe\x81.png": png()}, utf8_flag=True)
    return Case(save(src, data), "refused", refusal="UTF-8")


@case("zip: awkward but harmless names")
def _(src):
    deep = "cat/" + "d/" * 300 + "deep.png"
    return Case(save(src, zip_bytes({**base(), deep: png(), "cat/" + "x" * 4000 + ".png": png(),
                                     "dog/CON.png": png(), "dog/aux.png": png(),
                                     "dog/trailing.png.": png(), "dog/ sp ace .png": png(),
                                     "cat/e\u0301.png": png(), "dog/\u202eexe.png": png(),
                                     "cat/%2e%2e%2f.png": png(), "dog/~root.png": png()})),
                "cleaned", ["dog/trailing.png."])


@case("zip: duplicate member names and a self-extractor prefix")
def _(src):
    data = zip_bytes([*base().items(), ("cat/0.png", png()), ("cat/0.png", png((9, 9, 9)))])
    return Case(save(src, b"\x7fELF" + bytes(1020) + data), "accepted")


@case("zip: one class only")
def _(src):
    files = {name: data for name, data in base().items() if name.startswith("cat/")}
    return Case(save(src, zip_bytes(files)), "refused", refusal="one class only")


@case("zip: empty class folders")
def _(src):
    files = [(name, data) for name, data in base().items() if name.startswith("cat/")]
    data = zip_bytes(files + [("dog/", b""), ("eel/", b""), ("dog/sub/", b"")])
    return Case(save(src, data), "refused", refusal="one class only")


@case("zip: a class holding only junk and broken files")
def _(src):
    files = {name: data for name, data in base().items() if name.startswith("cat/")}
    files |= {"dog/.DS_Store": b"x", "dog/broken.jpg": b"nope", "__MACOSX/dog/._a.png": png()}
    return Case(save(src, zip_bytes(files)), "refused", refusal="one class only")


@case("zip: an empty class next to two real ones")
def _(src):
    return Case(save(src, zip_bytes([*base().items(), ("eel/", b"")])), "accepted")


@case("zip: empty archive")
def _(src):
    return Case(save(src, zip_bytes({})), "refused")


@case("zip: random bytes named .zip")
def _(src):
    return Case(save(src, random.Random(5).randbytes(5000)), "refused")


@case("zip: truncated archive")
def _(src):
    data = zip_bytes(base())
    return Case(save(src, data[:len(data) // 2]), "refused")


@case("zip: uploaded as a file object with traversal names")
def _(src):
    data = zip_bytes({**base(), f"../{ESCAPE}.png": png(), f"/tmp/{ESCAPE}.png": png()})
    return Case(io.BytesIO(data), "cleaned", [f"../{ESCAPE}.png", f"/tmp/{ESCAPE}.png"])


# ------------------------------------------------------------------------------ folders

def folder(src: Path, files: dict[str, bytes]) -> Path:
    root = src / "upload"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@case("folder: symbolic links to files and folders outside")
def _(src):
    root = folder(src, base())
    outside = folder(src / "outside", {"secret/a.png": png(), "secret/b.png": png()})
    os.symlink(outside / "secret" / "a.png", root / "cat" / "link.png")
    os.symlink(outside / "secret", root / "dog" / "linkdir")
    os.symlink(outside / "secret", root / "eel")  # a whole class that is a link
    os.symlink("/etc/passwd", root / "cat" / "passwd.png")
    os.symlink(root / "cat" / "0.png", root / "dog" / "loop.png")  # even inside the upload
    return Case(root, "cleaned", ["cat/link.png", "dog/linkdir", "eel", "cat/passwd.png",
                                  "dog/loop.png"])


@case("folder: special files")
def _(src):
    root = folder(src, base())
    os.mkfifo(root / "cat" / "pipe.png")
    return Case(root, "cleaned", ["cat/pipe.png"])


@case("folder: non-UTF-8 file and folder names")
def _(src):
    root = folder(src, base())
    os.makedirs(os.fsencode(root) + b"/\xff\xfeclass", exist_ok=True)
    for raw in (b"/cat/\xff\xfe.png", b"/dog/\xe9t\xe9.png",
                *(b"/\xff\xfeclass/%d\x80.png" % i for i in range(5))):
        with open(os.fsencode(root) + raw, "wb") as handle:
            handle.write(png())
    return Case(root, "accepted")


@case("folder: one class with images, two empty class folders")
def _(src):
    root = folder(src, {n: d for n, d in base().items() if n.startswith("cat/")})
    (root / "dog").mkdir()
    (root / "eel").mkdir()
    return Case(root, "refused", refusal="one class only")


@case("folder: nothing but clutter")
def _(src):
    root = folder(src, {"cat/.DS_Store": b"x", "dog/Thumbs.db": b"y", "__MACOSX/a.png": png()})
    return Case(root, "refused", refusal="no image files")


# ---------------------------------------------------------------------------------- csv

@case("csv: rows pointing outside, at links and at nothing")
def _(src):
    root = folder(src, base())
    os.symlink(root / "cat" / "0.png", root / "cat" / "link.png")
    rows = [f"{name},{name.split('/')[0]}" for name in base()]
    bad = ["../../../../etc/passwd", "/etc/shadow", "cat/link.png", "cat/missing.png", "/dev/zero"]
    rows += [f"{path},cat" for path in bad] + ["a,b,c", ",dog", "cat/0.png,"]
    (root / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    malformed = [f"labels.csv line {len(rows) + 1 - i}" for i in range(3)]  # header: line 1
    return Case(root / "labels.csv", "cleaned", bad + malformed)


@case("csv: not UTF-8")
def _(src):
    src.mkdir(parents=True)
    (src / "labels.csv").write_bytes(b"path,label\n\xff\xfe.png,cat\n")
    return Case(src / "labels.csv", "refused", refusal="UTF-8")


# ------------------------------------------------------------------------------- memory

@case("memory: hostile names in a browser upload")
def _(src):
    pairs = [*base().items(), (f"../{ESCAPE}.png", png()), (f"/tmp/{ESCAPE}.png", png()),
             (b"cat/\xff\xfe.png", png()), ("dog/none.png", None), ("cat/a\x00.png", png()),
             (f"cat\\..\\..\\{ESCAPE}.png", png())]
    hostile = [f"../{ESCAPE}.png", f"/tmp/{ESCAPE}.png", "dog/none.png", "cat/a\x00.png",
               f"cat\\..\\..\\{ESCAPE}.png"]
    return Case(pairs, "cleaned", hostile)


# --------------------------------------------------------------------------------- test

def files_under(root: Path, skip: Path | None = None) -> set[str]:
    found = set()
    for folder_name, dirs, files in os.walk(root):
        if skip is not None and Path(folder_name) == skip:
            dirs.clear()
            continue
        found.update(os.path.join(folder_name, name) for name in files + dirs)
    return found - {str(skip)}


def size_of(root: Path) -> int:
    return sum(os.lstat(os.path.join(folder_name, name)).st_size
               for folder_name, _, files in os.walk(root) for name in files)


def run_import(source, limits: IngestLimits):
    if isinstance(source, list):
        return import_entries(source, "hostile", limits=limits)
    return import_dataset(source, "hostile", limits=limits)


@pytest.fixture(scope="module", autouse=True)
def tally():
    yield
    if TALLY["tried"]:
        print(f"\nhostile corpus: {TALLY['tried']} uploads tried, {TALLY['refused']} refused, "
              f"{TALLY['cleaned']} cleaned ({TALLY['dropped']} of {TALLY['entries']} entries "
              f"dropped and listed), {TALLY['accepted']} accepted as harmless, "
              f"{TALLY['escapes']} escapes; largest workspace "
              f"{TALLY['max_ws_bytes'] / MiB:.2f} MiB; {TALLY['model files refused']} pickled "
              "model files refused unrun")


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW_CASES else name for name in CASES])
def test_hostile_upload_is_refused_or_cleaned_and_nothing_escapes(name, tmp_path, monkeypatch):
    ws, src = tmp_path / "ws", tmp_path / "src"
    monkeypatch.setenv("CNN_STUDIO_HOME", str(ws))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # a stray relative write would land here
    spec = CASES[name](src)
    before = files_under(tmp_path.parent, skip=ws), {p.name for p in Path("/tmp").iterdir()}
    try:
        dataset, message = run_import(spec.source, spec.limits), ""
    except DatasetError as error:
        dataset, message = None, str(error)

    assert escapes(tmp_path.parent, ws, *before) == []
    check_workspace(ws, dataset, spec.limits)
    TALLY["tried"] += 1
    if dataset is None:
        TALLY["refused"] += 1
        assert spec.expect == "refused", f"{name} was refused: {message}"
        assert message.endswith((".", ")")) and len(message) > 30
        assert re.search(spec.refusal, message), message
    else:
        check_imported(name, spec, dataset)


def escapes(around: Path, ws: Path, files_before: set[str], tmp_before: set[str]) -> list[str]:
    """New files anywhere around the workspace, and new /tmp entries named for an escape."""
    found = sorted(files_under(around, skip=ws) - files_before)
    found += sorted(str(p) for p in Path("/tmp").iterdir()
                    if p.name not in tmp_before and ESCAPE in p.name)
    TALLY["escapes"] += len(found)
    return found


def check_workspace(ws: Path, dataset: Dataset | None, limits: IngestLimits) -> None:
    """Only <ws>/datasets/hostile/ was written, no temp folder remains, and its images stay
    under the written-bytes cap (the manifest grows with the file list only)."""
    written = [Path(p).relative_to(ws) for p in files_under(ws) if Path(p).is_file()]
    assert all(p.parts[:2] == ("datasets", "hostile") for p in written), written
    assert not list(ws.glob("datasets/.importing-*"))
    total = size_of(ws)
    TALLY["max_ws_bytes"] = max(TALLY["max_ws_bytes"], total)
    if dataset is None:
        assert written == []
        return
    images = size_of(ws / "datasets" / "hostile" / "images")
    manifest = (ws / "datasets" / "hostile" / "manifest.json").stat().st_size
    assert images <= limits.max_written_bytes and total == images + manifest
    assert manifest < 64 * 1024 + 300 * (len(dataset.items) + len(dataset.dropped))


def check_imported(name: str, spec: Case, dataset: Dataset) -> None:
    """Every hostile entry is listed as dropped with a reason; the rest imported."""
    assert isinstance(dataset, Dataset) and len(dataset.classes) >= 2
    dropped = {item["file"]: item["reason"] for item in dataset.dropped}
    assert all(isinstance(reason, str) and reason for reason in dropped.values())
    missing = [bad for bad in spec.hostile if bad not in dropped]
    assert missing == [], f"not listed as dropped: {missing}; dropped: {list(dropped)[:20]}"
    assert len(dataset.dropped) >= spec.min_dropped
    TALLY["entries"] += len(dataset.items) + len(dataset.dropped)
    TALLY["dropped"] += len(dropped)
    TALLY["cleaned" if dropped else "accepted"] += 1
    assert spec.expect == ("cleaned" if dropped else "accepted"), f"{name}: dropped {dropped}"
    json.loads((dataset.folder / "manifest.json").read_text())  # the manifest is valid JSON
    json.dumps(dataset.summary())  # and so is what the CLI prints


# -------------------------------------------------------------------------- model files

class Payload:
    """Unpickling this creates a marker file: proof that the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_model_files_are_refused_without_running_them(tmp_path, monkeypatch):
    import torch

    from core.serving.model_import import import_model
    from core.store import Store

    monkeypatch.setenv("CNN_STUDIO_HOME", str(tmp_path / "ws"))
    monkeypatch.delenv("CNN_STUDIO_DB", raising=False)
    marker = tmp_path / "pickle-ran"
    card = {"model": "tiny-cnn", "classes": ["a", "b"], "in_chans": 3, "image_size": 32,
            "mean": [0.5] * 3, "std": [0.25] * 3}
    raw = pickle.dumps(Payload(marker))
    zipped = io.BytesIO()
    torch.save({"weights": Payload(marker)}, zipped)  # torch's zip-of-pickles format
    uploads = [raw, zipped.getvalue()]
    for suffix, data in (("pt", raw), ("pth", zipped.getvalue()), ("safetensors", raw),
                         ("safetensors", zipped.getvalue()), ("bin", raw)):
        path = tmp_path / f"model-{len(uploads)}.{suffix}"
        path.write_bytes(data)
        uploads.append(path)
    for upload in uploads:
        with pytest.raises(ValueError, match="safetensors"):
            import_model(upload, card, "pickled")
    assert not marker.exists()
    assert Store().list_runs() == []
    runs = tmp_path / "ws" / "runs"
    assert not runs.exists() or not any(runs.iterdir())
    TALLY["model files refused"] += len(uploads)
