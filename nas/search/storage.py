"""Optuna storages from the URLs users type: checked, normalized, opened with retries, and
never written to disk with their password.

Allowed: ``sqlite:///PATH``, ``postgresql://USER@HOST:PORT/DB`` (the ``postgres`` extra installs
psycopg 3; ``postgresql+psycopg2://`` works where psycopg2 is installed), ``mysql+DRIVER://...``
and ``journal:PATH`` (Optuna's journal file, shared by workers on one file system).

>>> normalize_url("sqlite:///runs/x/study.db")
'sqlite:///runs/x/study.db'
>>> stored_form("postgresql+psycopg://hwnas:secret@db:5432/nas")
'postgresql+psycopg://hwnas@db:5432/nas'
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from sqlalchemy.engine import make_url

from nas.core.errors import UserError
from nas.search._optuna import cached, journal_lock
from nas.search.resilient_storage import ResilientStorage, first_line, ride_out

log = logging.getLogger(__name__)

ALLOWED = "sqlite:///PATH, postgresql://USER@HOST:PORT/DB (pip install 'hwnas[postgres]'), mysql+DRIVER://... or journal:PATH"
HEARTBEAT_S, GRACE_S = 20, 60
_RETRIES = 8  # schema and study creation when several workers start together
_REACHED: set[str] = set()  # storages this process has used: an error there is an outage, not a typo


def _driver(scheme: str) -> str:
    """``postgresql`` -> ``postgresql+psycopg`` (psycopg 3, the postgres extra) or ``+psycopg2``."""
    if scheme != "postgresql":
        return scheme
    for module, name in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return name
    raise UserError("postgresql:// storage needs a PostgreSQL driver; install it with pip install 'hwnas[postgres]'")


def normalize_url(url: str) -> str:
    """The URL with its driver made explicit; a one-line error for anything not allowed."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        if not url.removeprefix("journal:") or path.is_dir():
            raise UserError(f"storage {url!r}: journal:PATH needs a file path; allowed: {ALLOWED}")
        return url
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UserError(f"storage {redact(url)!r} is not a storage URL; allowed: {ALLOWED}") from None
    scheme, _, driver = parsed.drivername.partition("+")
    if scheme not in ("sqlite", "postgresql", "mysql"):
        raise UserError(f"storage scheme {parsed.drivername!r} not allowed; allowed: {ALLOWED}")
    if scheme == "sqlite" and not parsed.database:
        raise UserError(f"storage {url!r}: an in-memory SQLite study is lost at exit; allowed: {ALLOWED}")
    if scheme == "postgresql" and not driver:
        parsed = parsed.set(drivername=_driver(scheme))
    return parsed.render_as_string(hide_password=False)


# query parameters that carry a secret (libpq's and the drivers' spellings)
_SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "sslpassword")


def _without_secret_query(url: Any, replacement: str | None) -> Any:
    query = {k: (replacement if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in url.query.items()}
    return url.set(query={k: v for k, v in query.items() if v is not None})


def redact(url: str) -> str:
    """The URL as shown to users: any password (``user:pw@`` or ``?password=``) replaced by ``***``."""
    if url.startswith("journal:"):
        return url
    try:
        shown = _without_secret_query(make_url(url), "***").render_as_string(hide_password=True)
        return shown.replace("%2A%2A%2A", "***")
    except sqlalchemy.exc.ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def stored_form(url: str) -> str:
    """What a run folder keeps (``storage.url``): the URL without its password. The password
    comes from the URL given each time, or libpq's ``PGPASSWORD`` / ``~/.pgpass`` for PostgreSQL."""
    if url.startswith("journal:"):
        return url
    bare = _without_secret_query(make_url(url), None)
    return bare._replace(password=None).render_as_string(hide_password=False)  # set() keeps a None


def _rdb(url: str, heartbeat: bool) -> optuna.storages.RDBStorage:
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several workers on one SQLite file wait for its lock instead of failing at once
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:  # after a database restart, pooled connections are dead: test each before use
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    if not heartbeat:
        return optuna.storages.RDBStorage(url, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # a trial whose heartbeat stops is failed and enqueued again (Optuna's retry callback)
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
                                          **kwargs)


def _schema_race(exc: Exception) -> bool:
    """SQLite reports two processes creating one schema (a worker, the dashboard, a script reading
    the study) as an OperationalError "table ... already exists", not as an IntegrityError."""
    return isinstance(exc, sqlalchemy.exc.OperationalError) and "already exists" in str(exc)


def retrying(what: str, url: str, action: Any) -> Any:
    """Run ``action()``, retrying the races of workers that start together (two creating one
    schema or one study); an unreachable or misconfigured database is a one-line UserError, at
    once the first time, and after riding out an outage once this process has reached it."""
    reached = url in _REACHED
    for attempt in range(_RETRIES):
        try:
            result = ride_out(action, redact(url)) if reached else action()
            _REACHED.add(url)
            return result
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.InternalError) as exc:
            if attempt == _RETRIES - 1:
                raise UserError(f"{what} {redact(url)}: {first_line(exc)}") from None
            log.info("%s %s raced another worker (%s); retrying", what, redact(url), first_line(exc))
            time.sleep(0.2 + random.random() * (attempt + 1) * 0.3)  # noqa: S311 - jitter, not security
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError, sqlalchemy.exc.ArgumentError,
                sqlalchemy.exc.NoSuchModuleError) as exc:
            if _schema_race(exc) and attempt < _RETRIES - 1:
                log.info("%s %s raced another process creating the schema (%s); retrying", what, redact(url),
                         first_line(exc))
                time.sleep(0.2 + random.random() * (attempt + 1) * 0.3)  # noqa: S311 - jitter, not security
                continue
            raise UserError(f"cannot use storage {redact(url)}: {first_line(exc)}") from None
    raise AssertionError("unreachable")


SQLITE_HEADER = b"SQLite format 3\x00"


def _stays_empty(path: Path, wait_s: float = 5.0) -> bool:
    """An empty file is either a lost database or one another process is creating this moment
    (SQLite writes the header with the first table): wait ``wait_s`` for the header."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if path.stat().st_size > 0:
            return False
    return True


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise UserError(f"storage {path}: cannot read it ({exc.strerror})") from None


def check_sqlite(path: Path) -> None:
    """Refuse an SQLite file that is empty or not SQLite (a new file is created by SQLite itself):
    opening it would write a fresh schema, and the run would start over without a word."""
    if not path.exists():
        return
    head = _head(path)
    if not head and not _stays_empty(path):
        head = _head(path)  # another worker has just created it
    if not head:
        raise UserError(f"storage {path} is empty (0 bytes), not a study database; restore it from a copy, or "
                        "remove it and use --out for a new run folder")
    if head != SQLITE_HEADER:
        raise UserError(f"storage {path} is not an SQLite database (it starts {head[:8]!r}); allowed: the "
                        "study.db hwnas wrote, or a new path")


def check_journal(path: Path) -> None:
    """Check a journal file while holding its lock: a last record cut mid-line (a writer killed,
    a disk that filled) is dropped, with a warning, before anything is appended after it; a
    record that is not JSON elsewhere is refused in one line naming the line."""
    with open(path, "rb") as fh:
        data = fh.read()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("journal %s: dropped its last record, cut after %d bytes (not a whole line)", path,
                    len(data) - end)
        with open(path, "r+b") as fh:
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
    for number, line in enumerate(data[:end].splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "op_code" not in record:
            raise UserError(f"journal {path}: line {number} is not an Optuna journal record ({line[:40]!r}); "
                            "restore the file from a copy")


def storage_from_url(url: str, *, heartbeat: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL (see the module docstring).

    RDB storages get heartbeats, so a trial of a killed process is failed and enqueued again;
    Optuna runs heartbeats only inside Study.optimize. Workers of every storage also leave their
    host and process id on their trials (:mod:`nas.search.workers`), so a dead one's trial is
    recovered at once on the same host.
    """
    url = normalize_url(url)
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        if not path.parent.is_dir():
            raise UserError(f"storage {url!r}: folder {path.parent} does not exist; allowed: {ALLOWED}")
        lock = JournalFileSymlinkLock(str(path))  # the lock Optuna's writers hold while they append
        if path.exists():
            with journal_lock(lock):
                check_journal(path)
        return ResilientStorage(optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=lock)), url)
    if url.startswith("sqlite:///"):
        check_sqlite(Path(url.removeprefix("sqlite:///")))
    rdb = retrying("cannot create the Optuna schema in", url, lambda: _rdb(url, heartbeat))
    return ResilientStorage(cached(rdb), redact(url))
