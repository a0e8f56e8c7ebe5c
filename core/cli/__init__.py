"""The command line, `python -m core …`: one module per group of commands, each adding its
sub-commands to the parser (`register`). A handler returns (JSON payload, text, exit code).

torch is imported inside the handlers that need it, so `runs list`, `data list` and `--help`
start in a fraction of a second.
"""

from __future__ import annotations

import argparse

from core.cli import bench, compare, data, models, runs, serve, train

GROUPS = (data, train, runs, models, bench, serve, compare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="CNN Studio engine")
    commands = parser.add_subparsers(dest="command")
    for group in GROUPS:
        group.register(commands)
    return parser
