"""Where the library's log records go for a command: progress (``hwnas.progress``) to stdout,
everything else at WARNING unless ``--verbose``; TensorFlow's and absl's noise quiet. Imported when
a command runs (it loads Optuna), never for ``--help``."""
from __future__ import annotations

import logging
import sys

import optuna

from nas.core.progress import PROGRESS
from nas.search.slots import TrialSkipped

def _not_shown_elsewhere(record: logging.LogRecord) -> bool:
    """Optuna logs every failed trial with its traceback, then "failed with value None". A skipped
    trial (duplicate, surplus) and a failed one have their own progress line instead, and an
    interrupt its one line from the command."""
    if record.exc_info and isinstance(record.exc_info[1], (TrialSkipped, KeyboardInterrupt)):
        return False
    message = record.getMessage()
    # a database error during an outage: hwnas's storage says it once in a line and retries
    return not (message.endswith("failed with value None.") or message.startswith("Caught an error from sqlalchemy"))


class _PrintProgress(logging.Handler):
    """Prints a progress record to whatever ``sys.stdout`` is now (a test's capture included)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stdout, flush=True)


def configure(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    # records of optuna.study._optimize and the like reach the handlers of the "optuna" logger
    # without passing that logger's own filters: filter at the handlers
    for handler in optuna.logging.get_logger("optuna").handlers:
        handler.addFilter(_not_shown_elsewhere)
    if not any(isinstance(h, _PrintProgress) for h in PROGRESS.handlers):
        PROGRESS.addHandler(_PrintProgress())
    PROGRESS.setLevel(logging.INFO)
    PROGRESS.propagate = False
    if not verbose:  # TensorFlow's C++ logs are quieted where the extra loads (nas.deploy._optional)
        for name in ("absl", "tensorflow", "jax"):
            logging.getLogger(name).setLevel(logging.ERROR)
