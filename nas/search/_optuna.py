"""The private parts of Optuna's API that hwnas uses, in one place, each with why no public API
serves (checked against Optuna 5.x; an upgrade that renames them breaks here and only here).

Storages address trials by their internal id, which Optuna's public ``Trial``/``FrozenTrial``
do not expose (they expose the per-study ``number``); a ``Study`` does not expose its storage.
"""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages.journal._file import BaseJournalFileLock, get_lock_file
from optuna.trial import FrozenTrial, TrialState


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage object: ``get_all_artifact_meta`` and trial recovery need it, and
    ``Study`` has no public accessor (``study._storage``)."""
    return study._storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (``_trial_id``): what storage methods take; ``number`` is not it."""
    return trial._trial_id


def set_system_attr(trial: optuna.Trial, key: str, value: Any) -> None:
    """A system attribute of a running trial: ``Trial.set_system_attr`` was removed from the
    public API, the storage method remains (heartbeats and the worker holding a trial)."""
    trial.storage.set_trial_system_attr(trial_id(trial), key, value)


def fail_trial(study: optuna.Study, trial: FrozenTrial, user_attrs: Mapping[str, Any]) -> FrozenTrial | None:
    """Mark another process's RUNNING ``trial`` FAIL with ``user_attrs`` (``study.tell`` accepts
    only trials this process asked for); None when another process finished it first."""
    storage = storage_of(study)
    try:
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(trial_id(trial), key, value)
        if not storage.set_trial_state_values(trial_id(trial), TrialState.FAIL):
            return None
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    return storage.get_trial(trial_id(trial))


def journal_lock(lock: BaseJournalFileLock) -> AbstractContextManager[None]:
    """Hold a journal file's lock, as Optuna's writers do while they append a record: checking
    and repairing the file under it cannot cut a record being written (``get_lock_file`` is
    module-private in ``optuna.storages.journal._file``; the lock objects are public)."""
    return get_lock_file(lock)


def cached(storage: optuna.storages.RDBStorage) -> BaseStorage:
    """An RDB storage behind Optuna's trial cache, as ``optuna.create_study(storage=RDBStorage)``
    would wrap it itself (``_CachedStorage``); hwnas wraps the cached storage once more
    (:class:`nas.search.resilient_storage.ResilientStorage`), which Optuna no longer recognises."""
    return _CachedStorage(storage)
