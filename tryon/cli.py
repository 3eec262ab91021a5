"""The `tryon` command line.

Verbs are plug-ins: every entry point in the group `tryon.commands` (see pyproject.toml) is a
function `register(subparsers)` that adds one verb and sets `func` on its parser. This keeps the
core package free of imports from `training` and `datasets`, which add their own verbs.

Every verb exits non-zero with one readable line on stderr for bad input; `--verbose` shows the
traceback and the INFO log (which, among other things, names the ops backend in use).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import NoReturn

from tryon import __version__

ENTRY_POINT_GROUP = "tryon.commands"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), the way every verb reports bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tryon",
        description="Virtual try-on built on a conditional StyleGAN2.",
    )
    parser.add_argument("--version", action="version", version=f"tryon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and show tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("tryon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`tryon labels | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if args.verbose:
            raise
        print(f"tryon {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    return int(rc or 0)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"no such file: {exc.filename}"
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
