"""The ``hwnas`` command line: one module per command group, each registering its commands. The
only code that prints; user errors exit 2 with one line.

>>> build_parser().parse_args(["zoo", "--json"]).json
True
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

import optuna

from nas.cli import compression, networks, predict, profile, search, supernet, train
from nas.core.errors import UserError
from nas.search.slots import TrialSkipped

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
    supernet.add_commands(sub)
    predict.add_commands(sub)
    return parser


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (timeout, systemd, batch schedulers) ends a command the way Ctrl-C does: the
    running trial is recorded as failed and everything finished is kept."""
    raise KeyboardInterrupt(f"signal {signum}")


def _not_skipped(record: logging.LogRecord) -> bool:
    """Optuna logs every failed trial with its traceback; a skipped one (duplicate, surplus) has
    its own progress line instead."""
    return not (record.exc_info and isinstance(record.exc_info[1], TrialSkipped))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.WARNING)
    optuna.logging.get_logger("optuna").addFilter(_not_skipped)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"hwnas: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
