"""A throwaway PostgreSQL server on a loopback port in a temporary folder, for the tests and the
reliability benchmark. Debian keeps the server programs in /usr/lib/postgresql/<v>/bin; the
server refuses to run as root, so as root it runs as the ``postgres`` user."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_bin() -> Path | None:
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None)


class Server:
    """A running temporary server that a test may stop (as in a crash: ``-m immediate``) and start again."""

    def __init__(self, pg_ctl: list[str], data: Path, options: str, log: Path, url: str) -> None:
        self.pg_ctl, self.data, self.options, self.log, self.url = pg_ctl, data, options, log, url

    def start(self) -> None:
        subprocess.run([*self.pg_ctl, "-D", str(self.data), "-o", self.options, "-l", str(self.log), "-w", "start"],
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"], capture_output=True)


@contextmanager
def temporary_server() -> Iterator[str]:
    """Start a server (trust authentication, user ``hwnas``); yields ``postgresql://hwnas@127.0.0.1:PORT``."""
    with controllable_server() as server:
        yield server.url


@contextmanager
def controllable_server() -> Iterator[Server]:
    """As :func:`temporary_server`, yielding the :class:`Server` itself."""
    bindir = server_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server programs not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="hwnas-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "hwnas"], check=True,
                   capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    server = Server([*as_user, str(bindir / "pg_ctl")], data, options, root / "log", f"postgresql://hwnas@127.0.0.1:{port}")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: str, name: str) -> str:
    """A new, empty database on ``server``; returns its URL."""
    import psycopg  # the postgres extra; only callers that run PostgreSQL need it

    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
