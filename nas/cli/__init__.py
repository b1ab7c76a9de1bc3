"""The ``hwnas`` command line: the parser in ``nas.cli.parser``, one module per command group for
the handlers (imported when their command runs). The only code that prints; user errors exit 2 with
one line.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from nas.cli.parser import build_parser
from nas.core.errors import UserError

EXIT_USER_ERROR = 2
# TensorFlow (under LiteRT and AI Edge Quantizer) logs through C++ and absl at import and per
# conversion; quiet unless --verbose. Read by TensorFlow when it loads, so set before any import.
_QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "2"}


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (timeout, systemd, batch schedulers) ends a command the way Ctrl-C does: the
    running trial is recorded as failed and everything finished is kept."""
    raise KeyboardInterrupt(f"signal {signum}")


def _configure_logging(verbose: bool) -> None:
    import optuna

    from nas.search.slots import TrialSkipped

    def not_skipped(record: logging.LogRecord) -> bool:
        """Optuna logs every failed trial with its traceback; a skipped one (duplicate, surplus)
        has its own progress line instead."""
        return not (record.exc_info and isinstance(record.exc_info[1], TrialSkipped))

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    optuna.logging.get_logger("optuna").addFilter(not_skipped)
    if not verbose:
        for key, value in _QUIET_TF.items():
            os.environ.setdefault(key, value)
        for name in ("absl", "tensorflow", "jax"):
            logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"hwnas: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
