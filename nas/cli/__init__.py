"""The ``hwnas`` command line: one module per command group, each registering its commands. The
only code that prints; user errors exit 2 with one line.

>>> build_parser().parse_args(["zoo", "--json"]).json
True
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import optuna

from nas.cli import compression, networks, predict, profile, search, train
from nas.core.errors import UserError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hwnas", description="Hardware-aware neural architecture search.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log library details")
    sub = parser.add_subparsers(dest="command", required=True)
    search.add_commands(sub)
    compression.add_commands(sub)
    networks.add_commands(sub)
    profile.add_commands(sub)
    train.add_commands(sub)
    predict.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.WARNING)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"hwnas: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
