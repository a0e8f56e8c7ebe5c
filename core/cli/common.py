"""What every command of `python -m core` shares: the result shape, progress on stderr, and
number formatting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Result = tuple[object, str, int]  # (the JSON payload, the text for a person, the exit code)
Handler = Callable[[argparse.Namespace], Result | None]


def command(group, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """A sub-command of `group` that runs `handler` and takes `--json`."""
    sub = group.add_parser(name, help=help_text, description=help_text)
    sub.set_defaults(handler=handler)
    sub.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return sub


def stderr_progress(label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr)
    return report


def fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)
