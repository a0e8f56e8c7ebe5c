"""Renames that survive a power loss.

A rename is an entry in its folder; until the folder itself is fsynced, a crash of the
machine can bring back the old entry (or none) even though the file's bytes were fsynced.
Every atomic write (temp file, fsync, rename) ends with `replace_durably`, or, for a rename
done otherwise, `fsync_directory` of the folder it landed in.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's bytes to disk (before it is renamed into place)."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(folder: str | os.PathLike) -> None:
    """Flush a folder's entries to disk: the renames and new files in it."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """os.replace, then fsync the target's folder so the rename itself is on disk."""
    os.replace(source, target)
    fsync_directory(Path(target).parent)
