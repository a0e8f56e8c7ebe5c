"""Bytes of the images and zip archives the tests upload or import (shared by the test files)."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable

from PIL import Image


def png(colour: tuple[int, ...] | int = (200, 30, 30), size: int | tuple[int, int] = (8, 8),
        mode: str = "RGB") -> bytes:
    """A plain one-colour PNG; `size` is (width, height) or one side of a square."""
    side = (size, size) if isinstance(size, int) else size
    buffer = io.BytesIO()
    Image.new(mode, side, colour).save(buffer, "PNG")
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes] | Iterable[tuple[str, bytes]],
              compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of `files` (name → bytes, or (name, bytes) pairs where a name repeats)."""
    buffer = io.BytesIO()
    items = files.items() if isinstance(files, dict) else files
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in items:
            archive.writestr(name, data)
    return buffer.getvalue()


def patch_central(data: bytes, name: str | bytes, *, size: int | None = None,
                  flags: int | None = None, attr: int | None = None) -> bytes:
    """Rewrite what the zip's central directory declares for member `name`: its uncompressed
    size, its general-purpose flags or its external attributes (e.g. a symlink's mode)."""
    wanted = name if isinstance(name, bytes) else name.encode()
    raw, at = bytearray(data), 0
    while (at := raw.find(b"PK\x01\x02", at)) >= 0:
        length = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46:at + 46 + length] == wanted:
            if size is not None:
                struct.pack_into("<I", raw, at + 24, size)
            if flags is not None:
                struct.pack_into("<H", raw, at + 8, flags)
            if attr is not None:
                struct.pack_into("<I", raw, at + 38, attr)
        at += 4
    return bytes(raw)
