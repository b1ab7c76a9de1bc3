"""Progress inside long steps (training epochs, image decoding, export), as log records on one
logger: library code reports here, and the CLI prints this logger's records to stdout (the rest of
the library's logging stays quiet unless ``--verbose``).

>>> clock(75), clock(3725)
('1:15', '1:02:05')

``Ticker("decoding", total=4).update(2)`` logs ``decoding 2/4, 0:00 elapsed, ETA 0:00`` (at most
every ``every_s`` seconds).
"""
from __future__ import annotations

import logging
import time

PROGRESS = logging.getLogger("hwnas.progress")


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) of a duration in seconds."""
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Ticker:
    """Reports ``done/total`` of a step with elapsed time and ETA, at most every ``every_s`` seconds
    (``force`` reports regardless, e.g. at the end of an epoch)."""

    def __init__(self, what: str, total: int, *, every_s: float = 20.0, indent: str = "") -> None:
        self.what, self.total, self.every_s, self.indent = what, max(1, total), every_s, indent
        self.started = time.perf_counter()
        self.last = self.started

    def eta(self, done: int) -> float:
        elapsed = time.perf_counter() - self.started
        return elapsed / max(1, done) * max(0, self.total - done)

    def update(self, done: int, detail: str = "", *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        PROGRESS.info("%s%s %d/%d%s, %s elapsed, ETA %s", self.indent, self.what, done, self.total,
                      f": {detail}" if detail else "", clock(now - self.started), clock(self.eta(done)))


def note(message: str, *args: object) -> None:
    """A one-off progress line (a step that starts and has no count, such as a conversion)."""
    PROGRESS.info(message, *args)
