"""Renames that survive a power loss.

A rename is an entry in its folder; until the folder itself is fsynced, a crash of the
machine can bring back the old entry (or none) even though the file's bytes were fsynced.
Every atomic write (temp file, fsync, rename) ends with `replace_durably`, or, for a rename
done otherwise, `fsync_directory` of the folder it landed in. JSON files (configs, manifests,
checkpoint metadata) go through `write_json_atomic`.
"""

from __future__ import annotations

import json
import os
import tempfile
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


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON so a crash leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        replace_durably(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
