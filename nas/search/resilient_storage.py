"""A storage that rides out an outage: every operation of the wrapped Optuna storage is retried
with backoff while the database (or the file system under a journal) is unreachable, for up to
:data:`OUTAGE_S` seconds, with one warning line when it starts and one when it ends.

A longer outage raises :class:`StorageUnavailable` (a one-line UserError, exit 2) and is remembered
(:attr:`ResilientStorage.gave_up`), so the search can report it even when Optuna's own clean-up,
which touches the storage again, fails with another error on the way out. The trial that was
running stays RUNNING in the storage; the next worker or the next start recovers it (failed and
enqueued again, :func:`nas.search.workers.recover_stale`).

A full disk (``ENOSPC``) is not an outage: it is one line at once.
"""
from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat

from nas.core.errors import UserError

log = logging.getLogger(__name__)

OUTAGE_S = 120.0  # how long an operation is retried before the worker gives up
_FIRST_WAIT_S, _LONGEST_WAIT_S = 0.5, 10.0
_NOT_OUTAGES = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.ENOENT)


class StorageUnavailable(UserError):
    """The storage stayed unreachable for longer than the worker waits."""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (Optuna wraps the database's errors in its own)."""
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 6:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def is_outage(exc: BaseException) -> bool:
    """A connection or I/O failure that may pass (a database restarting, a network file system
    hiccup), as opposed to a refusal that will not (a full disk, a schema error, a bug). Optuna
    wraps the database's errors (StorageInternalError from the OperationalError): the chain of
    causes is read."""
    for seen in _chain(exc):
        if isinstance(seen, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            return True
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, OSError) and not isinstance(seen, FileNotFoundError):
            return seen.errno not in _NOT_OUTAGES
    return False


def _disk_full(exc: BaseException) -> bool:
    """No space left: an OSError, or SQLite's "database or disk is full" (an OperationalError)."""
    return any((isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or "disk is full" in str(e)
               or "No space left" in str(e) for e in _chain(exc))


def _read_only(exc: BaseException) -> bool:
    return any((isinstance(e, OSError) and e.errno == errno.EROFS) or "readonly database" in str(e)
               for e in _chain(exc))


def first_line(exc: BaseException) -> str:
    """``Type: first line`` of a storage error: the database driver's own error where SQLAlchemy
    or Optuna wrapped it."""
    while exc.__cause__ is not None and not isinstance(exc, sqlalchemy.exc.DBAPIError):
        exc = exc.__cause__
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0] if lines else ''}".strip()


def ride_out(action: Callable[[], Any], where: str, *, outage_s: float = OUTAGE_S,
             sleep: Callable[[float], None] = time.sleep) -> Any:
    """``action()``, retried with backoff while the storage ``where`` is unreachable, for up to
    ``outage_s`` seconds (a warning line when the outage starts and one when it ends)."""
    started, wait = None, _FIRST_WAIT_S
    while True:
        try:
            result = action()
        except Exception as exc:
            if _disk_full(exc):
                raise UserError(f"storage {where}: the disk is full ({first_line(exc)}); free space and run the "
                                "same command (the running trial is re-run)") from None
            if _read_only(exc):
                raise UserError(f"storage {where} is read-only ({first_line(exc)}); this command writes to it: "
                                "run it where the run folder is writable") from None
            if not is_outage(exc):
                raise
            now = time.monotonic()
            if started is None:
                started = now
                log.warning("storage %s unreachable (%s); retrying for up to %.0f s", where, first_line(exc),
                            outage_s)
            if now - started >= outage_s:
                raise StorageUnavailable(
                    f"storage {where} unreachable for {now - started:.0f} s ({first_line(exc)}); run the same "
                    "command when it is back: finished trials are kept and the running one is re-run") from None
            sleep(wait)
            wait = min(wait * 2, _LONGEST_WAIT_S)
            continue
        if started is not None:
            log.warning("storage %s reachable again after %.0f s", where, time.monotonic() - started)
        return result


def _retried(name: str) -> Callable[..., Any]:
    def method(self: ResilientStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)
    method.__name__ = name
    return method


class ResilientStorage(BaseStorage, BaseHeartbeat):
    """``inner`` (an Optuna storage, e.g. a cached RDB storage) with its operations retried
    through outages; ``where`` names it in messages (no password)."""

    def __init__(self, inner: BaseStorage, where: str, *, outage_s: float = OUTAGE_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner, self.where, self.outage_s, self.sleep = inner, where, outage_s, sleep
        self.gave_up: UserError | None = None  # why the storage was given up, for the one line

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return ride_out(lambda: getattr(self.inner, name)(*args, **kwargs), self.where, outage_s=self.outage_s,
                            sleep=self.sleep)
        except UserError as exc:  # an outage that lasted, or a full disk
            self.gave_up = exc
            raise

    # heartbeats: enabled exactly when the wrapped storage has them (Optuna checks isinstance)
    def get_heartbeat_interval(self) -> int | None:
        return self.inner.get_heartbeat_interval() if isinstance(self.inner, BaseHeartbeat) else None

    def record_heartbeat(self, trial_id: int) -> None:
        self._call("record_heartbeat", trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return list(self._call("_get_stale_trial_ids", study_id))

    def get_failed_trial_callback(self) -> Any:
        return self.inner.get_failed_trial_callback() if isinstance(self.inner, BaseHeartbeat) else None

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self.inner.get_heartbeat_stale_trial_callback() if isinstance(self.inner, BaseHeartbeat) else None

    def remove_session(self) -> None:
        self.inner.remove_session()

    # every storage operation, retried through an outage
    create_new_study = _retried("create_new_study")
    delete_study = _retried("delete_study")
    set_study_user_attr = _retried("set_study_user_attr")
    set_study_system_attr = _retried("set_study_system_attr")
    get_study_id_from_name = _retried("get_study_id_from_name")
    get_study_name_from_id = _retried("get_study_name_from_id")
    get_study_directions = _retried("get_study_directions")
    get_study_user_attrs = _retried("get_study_user_attrs")
    get_study_system_attrs = _retried("get_study_system_attrs")
    get_all_studies = _retried("get_all_studies")
    create_new_trial = _retried("create_new_trial")
    set_trial_param = _retried("set_trial_param")
    get_trial_id_from_study_id_trial_number = _retried("get_trial_id_from_study_id_trial_number")
    get_trial_number_from_id = _retried("get_trial_number_from_id")
    get_trial_param = _retried("get_trial_param")
    set_trial_state_values = _retried("set_trial_state_values")
    set_trial_intermediate_value = _retried("set_trial_intermediate_value")
    set_trial_user_attr = _retried("set_trial_user_attr")
    set_trial_system_attr = _retried("set_trial_system_attr")
    get_trial = _retried("get_trial")
    get_all_trials = _retried("get_all_trials")
    get_n_trials = _retried("get_n_trials")
    get_best_trial = _retried("get_best_trial")
    get_trial_params = _retried("get_trial_params")
    get_trial_user_attrs = _retried("get_trial_user_attrs")
    get_trial_system_attrs = _retried("get_trial_system_attrs")
    check_trial_is_updatable = _retried("check_trial_is_updatable")
