"""The storage optuna-dashboard is given: the run's own, with hwnas's internal studies (the
``<name>-workers`` registry of :mod:`nas.search.workers`) left out of the study list and refused
deletion, so a user sees the search and its baselines only.

Every method delegates to the wrapped storage; only the study list and deletion differ.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.storages import BaseStorage
from optuna.study._frozen import FrozenStudy

from nas.core.errors import UserError
from nas.search.workers import workers_study_name


def is_internal(study_name: str) -> bool:
    """A study hwnas keeps for itself (the workers registry), not one a user searched."""
    return study_name.endswith(workers_study_name(""))


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: UserStudies, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)
    method.__name__ = name
    return method


class UserStudies(BaseStorage):
    """``inner`` without its internal studies in :meth:`get_all_studies`."""

    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner

    def get_all_studies(self) -> list[FrozenStudy]:
        return [s for s in self.inner.get_all_studies() if not is_internal(s.study_name)]

    def delete_study(self, study_id: int) -> None:
        if is_internal(self.inner.get_study_name_from_id(study_id)):
            raise UserError("this study is hwnas's registry of worker processes; it is not deleted from here")
        self.inner.delete_study(study_id)

    create_new_study = _delegate("create_new_study")
    create_new_trial = _delegate("create_new_trial")
    get_all_trials = _delegate("get_all_trials")
    get_study_directions = _delegate("get_study_directions")
    get_study_id_from_name = _delegate("get_study_id_from_name")
    get_study_name_from_id = _delegate("get_study_name_from_id")
    get_study_system_attrs = _delegate("get_study_system_attrs")
    get_study_user_attrs = _delegate("get_study_user_attrs")
    get_trial = _delegate("get_trial")
    get_trial_id_from_study_id_trial_number = _delegate("get_trial_id_from_study_id_trial_number")
    get_n_trials = _delegate("get_n_trials")
    set_study_system_attr = _delegate("set_study_system_attr")
    set_study_user_attr = _delegate("set_study_user_attr")
    set_trial_intermediate_value = _delegate("set_trial_intermediate_value")
    set_trial_param = _delegate("set_trial_param")
    set_trial_state_values = _delegate("set_trial_state_values")
    set_trial_system_attr = _delegate("set_trial_system_attr")
    set_trial_user_attr = _delegate("set_trial_user_attr")
