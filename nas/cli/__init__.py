"""The ``hwnas`` command line: the parser in ``nas.cli.parser``, one module per command group for
the handlers (imported when their command runs). The only code that prints; user errors exit 2 with
one line.
"""
from __future__ import annotations

import errno
import importlib
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from nas.cli.parser import build_parser
from nas.core.errors import UserError, plain

EXIT_USER_ERROR = 2
_ENVIRONMENT_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (timeout, systemd, batch schedulers) ends a command the way Ctrl-C does: the
    running trial is recorded as failed and everything finished is kept."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    importlib.import_module("nas.cli._logging").configure(args.verbose)  # loads Optuna: not for --help
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"hwnas: error: {plain(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRORS:
            raise
        # the machine, not hwnas: a full disk, a read-only or forbidden folder; what finished is kept
        print(f"hwnas: error: cannot write {exc.filename or 'a file'}: {exc.strerror}; free space or use a "
              "writable folder, then run the same command", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
