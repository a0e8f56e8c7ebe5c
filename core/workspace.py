"""Where things live on disk: the workspace folder and the database URL."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REPO_ROOT = Path(__file__).resolve().parents[1]  # where `python -m core` runs from


def home() -> Path:
    """The workspace folder (`CNN_STUDIO_HOME`, default `./workspace`), created on first use."""
    path = Path(os.environ.get("CNN_STUDIO_HOME", "workspace")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_url() -> str:
    """The store's SQLAlchemy URL (`CNN_STUDIO_DB`, default a SQLite file in the workspace)."""
    return os.environ.get("CNN_STUDIO_DB") or f"sqlite:///{home() / 'studio.db'}"


def datasets_dir() -> Path:
    path = home() / "datasets"
    path.mkdir(exist_ok=True)
    return path


def runs_dir() -> Path:
    path = home() / "runs"
    path.mkdir(exist_ok=True)
    return path


def logs_dir() -> Path:
    path = home() / "logs"
    path.mkdir(exist_ok=True)
    return path


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine: a temp file or folder named for a dead
    one was left by a killed process and can go."""
    if pid <= 0:
        return True  # not a pid we wrote; never treat it as litter
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to another user
        return True
    return not zombie(pid)


def zombie(pid: int) -> bool:
    """A process that has exited but whose parent has not reaped it yet (Linux's /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def this_host() -> str:
    """The name a run's worker records, so a reader on the same machine can check its pid."""
    return socket.gethostname()


def safe_name(text: str, fallback: str = "dataset") -> str:
    """A name check_name accepts, made from a file name: "My Photos (2).zip" → "My-Photos-2"."""
    stem = re.sub(r"\.(zip|tar|gz|tgz)$", "", text.strip(), flags=re.IGNORECASE)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:64]
    return name or fallback


def next_free_name(template: str, taken: set[str] | list[str], start: int = 1) -> str:
    """`template` ("{n}" in it) with the first number from `start` whose name is not taken:
    next_free_name("fm-sweep-{n}", {"fm-sweep-1"}) → "fm-sweep-2"."""
    taken, number = set(taken), start
    while template.format(n=number) in taken:
        number += 1
    return template.format(n=number)


NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_name(name: str, what: str = "name") -> str:
    """Return `name` if it is safe as a folder name, else raise ValueError saying what's allowed."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name in {".", ".."}:
        raise ValueError(
            f"{what} {name!r} is not allowed: use {NAME_RULE}."
        )
    return name
