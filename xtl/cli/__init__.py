"""Command line: ``xtl demo|transplant|sweep|eval|report|paper|lens``, thin wrappers over the
library. torch and TransformerLens are imported only by the commands that need them, so
``xtl --help`` answers at once. Library messages (``logging``, logger ``xtl``) are shown here,
one line each on stderr."""

from __future__ import annotations

import logging
import sys

from xtl.cli.checks import parse_layers
from xtl.errors import XtlError

__all__ = ["main", "build_parser", "parse_layers", "builtin_pair"]


def build_parser():
    """The argument parser (see :mod:`xtl.cli.parser`)."""
    from xtl.cli.parser import build_parser as build

    return build()


def builtin_pair() -> dict:
    """The built-in demo pair (moved to :func:`xtl.tasks.builtin_pair`)."""
    from xtl.tasks.registry import builtin_pair as pair

    return pair()


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"xtl: {record.getMessage()}"


def _show_library_messages() -> logging.Handler:
    """Library log messages of level INFO and up, as ``xtl: ...`` lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logger = logging.getLogger("xtl")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def main(argv: list[str] | None = None) -> int:
    from xtl.cli.commands import COMMANDS

    args = build_parser().parse_args(argv)
    handler = _show_library_messages()
    try:
        COMMANDS[args.command](args)
    except XtlError as exc:
        print(f"xtl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"xtl: interrupted; {exc or 'finished items are saved, run the same command to resume'}",
              file=sys.stderr)
        return 130
    finally:
        logging.getLogger("xtl").removeHandler(handler)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
