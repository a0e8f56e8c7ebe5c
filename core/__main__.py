"""The command line: python -m core … (core/cli/, docs/architecture.md).

With --json, stdout carries exactly one JSON object; progress goes to stderr.
Errors a person can fix print one sentence to stderr and exit with status 2.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from core.cli import build_parser
from core.data.dataset import DatasetError

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.command == "worker" else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        result = args.handler(args)
    except (DatasetError, ValueError, FileNotFoundError, PermissionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("CNN_STUDIO_DEBUG"):
            raise
        print(f"error: unexpected {error.__class__.__name__}: {error} "
              "(set CNN_STUDIO_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    if result is None:
        return 0
    payload, text, code = result
    if getattr(args, "json", False):
        print(json.dumps(payload, default=str))
    elif text:
        print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
