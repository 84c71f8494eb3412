"""Command lines in the same vocabulary: argparse types from the parsers, and one-line usage errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from confcheck.reading import shown

T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: --port: reason``) and exit 2, not the usage block.

    Sub-commands inherit it (argparse builds sub-parsers with the parent's class).
    """

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see --help)\n")


def arg(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type=` from a confcheck parser; argparse names the option in its message."""

    def convert(raw: str) -> T:
        try:
            return parse(raw)
        except ValueError as exc:
            detail = f", got {shown(raw)}" if raw.strip() else ""
            raise argparse.ArgumentTypeError(f"{exc}{detail}") from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def fail(prog: str, message: str) -> NoReturn:
    """The one line for a bad setting found after parsing, then exit status 2."""
    sys.stderr.write(f"{prog}: config error: {' '.join(message.split())}\n")
    raise SystemExit(2)
