"""Writing files so that a kill at any moment leaves the old file or the new one, never half of one.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> write_atomic(path, b"x"); path.read_bytes()
b'x'
"""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def host_tag() -> str:
    """This host's name without dots, as temporary file names carry it."""
    return socket.gethostname().replace(".", "-")


def tmp_tag() -> str:
    """``host.pid`` of this process, in temporary file names: a cleaner on a shared file system
    removes only the files of dead processes of its own host."""
    return f"{host_tag()}.{os.getpid()}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path`` (so power loss too leaves one whole file)."""
    tmp = path.with_name(f".{path.name}.{tmp_tag()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a read-only folder, an interrupt: no half-written file stays
        with contextlib.suppress(OSError):  # on a read-only file system even a missing file cannot be unlinked
            tmp.unlink(missing_ok=True)
        raise
