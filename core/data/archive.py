"""Enumerate the files of an upload — zip, folder, CSV or in-memory — as `Entry` objects.

Nothing is read here beyond directory listings, zip headers and the CSV itself: each
entry carries its declared size and a `read(at_most)` function, so the ingest
pipeline can check it before a byte of it is read. Problems that belong to one kind
of source (a symlink, an unsafe path, an encrypted member) are recorded on the entry
as `problem`, and the pipeline drops it with that reason.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import struct
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.data.dataset import DatasetError

DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "Icon\r"})
ZIP_UTF8_FLAG = 0x800
ZIP_ENCRYPTED_FLAG = 0x1


@dataclass
class Entry:
    name: str  # relative posix path as shown to the person ("cats/a.jpg")
    size: int = 0  # declared uncompressed size in bytes
    read: Callable[[int], bytes] | None = None  # read(at_most) -> bytes
    compressed: int | None = None  # compressed size of a zip member, None for other sources
    label: str | None = None  # the class, when the source names it (CSV)
    problem: str = ""  # why this entry must be dropped without reading it


def take(entries: Iterable[Entry], max_entries: int, what: str) -> list[Entry]:
    """Collect entries, refusing the whole upload as soon as there are too many."""
    collected: list[Entry] = []
    for entry in entries:
        collected.append(entry)
        if len(collected) > max_entries:
            raise too_many(what, max_entries)
    return collected


def too_many(what: str, max_entries: int) -> DatasetError:
    return DatasetError(
        f"{what} holds more than {max_entries:,} files, over the import limit. "
        "Split it into smaller datasets or remove files that are not images."
    )


def normalize_name(raw: str) -> tuple[str, str]:
    """(clean relative posix name, "") or (raw, reason) when the name could leave its folder."""
    text = raw.replace("\\", "/")
    if any(ord(char) < 32 for char in text):
        return raw, "unsafe path: control characters in the name"
    if text.startswith("/"):
        return raw, "unsafe path: absolute path"
    if DRIVE_LETTER.match(text):
        return raw, "unsafe path: drive letter"
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        return raw, "unsafe path: leads out of its folder (..)"
    clean = unicodedata.normalize("NFC", "/".join(parts))
    if DRIVE_LETTER.match(clean):  # "./C:/x" is "C:/x" once the "." is gone
        return raw, "unsafe path: drive letter"
    return clean, ""


def junk_reason(name: str) -> str:
    """Why a name is clutter rather than data (macOS / Windows metadata, hidden files), or ""."""
    parts = [part for part in name.split("/") if part]
    if "__MACOSX" in parts:
        return "macOS metadata (__MACOSX)"
    if parts and parts[-1] in SYSTEM_FILES:
        return f"system file ({parts[-1]})"
    if any(part.startswith(".") and part not in (".", "..") for part in parts):
        return "hidden file or folder (name starts with '.')"
    return ""


# ---------------------------------------------------------------------------------- zip

def open_zip(handle: BinaryIO, label: str, max_entries: int) -> zipfile.ZipFile:
    """Open a zip after checking its declared entry count, mapping every failure to DatasetError."""
    try:
        if declared_entry_count(handle) > max_entries:
            raise too_many(label, max_entries)
        handle.seek(0)
        archive = zipfile.ZipFile(handle)
    except DatasetError:
        raise
    except UnicodeDecodeError:
        raise DatasetError(
            f"{label} has a file name that claims to be UTF-8 but is not. "
            "Re-create the zip with a current archiver."
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error,
            NotImplementedError) as exc:
        raise DatasetError(
            f"{label} is not a readable zip file ({exc}). "
            "Re-create it, or upload the folder instead."
        ) from None
    if len(archive.infolist()) > max_entries:  # the record above can lie; the listing cannot
        raise too_many(label, max_entries)
    return archive


def declared_entry_count(handle: BinaryIO) -> int:
    """Entry count from the end-of-central-directory record, read before zipfile lists them all."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - (22 + 65535)))  # the record plus the longest possible comment
    tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return 0  # not a zip: zipfile will say so
    count = struct.unpack_from("<H", tail, at + 10)[0]
    if count == 0xFFFF and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        handle.seek(struct.unpack_from("<Q", tail, at - 12)[0])  # the zip64 record
        record = handle.read(56)
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            count = struct.unpack_from("<Q", record, 32)[0]
    return count


def zip_entries(archive: zipfile.ZipFile) -> Iterator[Entry]:
    for info in archive.infolist():
        if info.is_dir() or info.filename.endswith("\\"):
            continue
        name, problem = normalize_name(zip_name(info))
        problem = problem or zip_problem(info)
        yield Entry(name, info.file_size, zip_reader(archive, info), info.compress_size,
                    problem=problem)


def zip_name(info: zipfile.ZipInfo) -> str:
    """The member's name as text. Without the UTF-8 flag zipfile decodes cp437, but many tools
    write UTF-8 and forget the flag: recover that when the bytes are valid UTF-8."""
    if info.flag_bits & ZIP_UTF8_FLAG:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def zip_problem(info: zipfile.ZipInfo) -> str:
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link (links are never followed)"
    if info.flag_bits & ZIP_ENCRYPTED_FLAG:
        return "encrypted (password-protected) file"
    return ""


def zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[int], bytes]:
    def read(at_most: int) -> bytes:
        with archive.open(info) as member:
            return member.read(at_most)
    return read


# ------------------------------------------------------------------------------- folder

def folder_entries(root: Path) -> Iterator[Entry]:
    """Every file under `root`, in name order, never following a symbolic link."""
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as listing:
                items = sorted(listing, key=lambda item: item.name)
        except OSError as exc:
            yield Entry(prefix or folder.name, problem=f"folder could not be listed ({exc})")
            continue
        subfolders = []
        for item in items:
            name = unicodedata.normalize("NFC", prefix + item.name)
            if item.is_symlink():
                yield Entry(name, problem="symbolic link (links are never followed)")
            elif item.is_dir(follow_symlinks=False):
                reason = junk_reason(name + "/")
                if reason:
                    yield Entry(name + "/", problem=reason)  # skipped whole, not listed inside
                else:
                    subfolders.append((Path(item.path), name + "/"))
            else:
                yield file_entry(name, Path(item.path))
        stack.extend(reversed(subfolders))


def file_entry(name: str, path: Path, label: str | None = None) -> Entry:
    """An entry for a file on disk, checked with lstat (a link is reported, not followed)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return Entry(name, label=label, problem="file not found")
    except OSError as exc:
        return Entry(name, label=label, problem=f"file could not be read ({exc.strerror})")
    if stat.S_ISLNK(info.st_mode):
        return Entry(name, label=label, problem="symbolic link (links are never followed)")
    if not stat.S_ISREG(info.st_mode):
        return Entry(name, label=label, problem="not a regular file")
    return Entry(name, info.st_size, file_reader(path), label=label)


def file_reader(path: Path) -> Callable[[int], bytes]:
    def read(at_most: int) -> bytes:
        # O_NOFOLLOW / O_NONBLOCK: a file swapped for a link or a pipe since the listing
        # fails or returns at once instead of being followed or blocking.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError("not a regular file")
            return handle.read(at_most)
    return read


# ---------------------------------------------------------------------------------- csv

def csv_entries(path: Path, max_bytes: int) -> Iterator[Entry]:
    """Rows `path,label` (header optional); paths relative to the CSV's folder or absolute."""
    for number, cells in csv_rows(path, max_bytes):
        if number == 1 and [cell.lower() for cell in cells] == ["path", "label"]:
            continue
        if len(cells) != 2 or not all(cells):
            yield Entry(f"{path.name} line {number}",
                        problem="expected two columns: path,label")
            continue
        file, label = cells
        target = Path(file) if Path(file).is_absolute() else path.parent / file
        yield file_entry(file, target, unicodedata.normalize("NFC", label))


def csv_rows(path: Path, max_bytes: int) -> Iterator[tuple[int, list[str]]]:
    try:
        if path.stat().st_size > max_bytes:
            raise DatasetError(f"{path.name} is larger than {max_bytes:,} bytes; "
                               "a CSV of path,label rows should be far smaller.")
        text = path.read_bytes().decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
    except UnicodeDecodeError:
        raise DatasetError(f"{path.name} is not UTF-8 text; save it as UTF-8 CSV.") from None
    except (OSError, csv.Error) as exc:
        raise DatasetError(f"{path.name} could not be read as CSV ({exc}).") from None
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            yield number, cells


# ------------------------------------------------------------------------------- memory

def memory_entries(pairs: Iterable[tuple[str, bytes]]) -> Iterator[Entry]:
    """Uploads already in memory: (relative name, bytes)."""
    for raw, data in pairs:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        if not isinstance(raw, str) or raw.replace("\\", "/").endswith("/"):
            continue
        name, problem = normalize_name(raw)
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data)
        else:
            data, problem = b"", problem or "upload holds no bytes"
        yield Entry(name, len(data), memory_reader(data), problem=problem)


def memory_reader(data: bytes) -> Callable[[int], bytes]:
    return lambda at_most: data[:at_most]
