"""The record of one trial of a compression search (:mod:`nas.search.own_search`): the keys it
stores on the Optuna trial are spelled here and nowhere else."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna


@dataclass(frozen=True)
class RecipeTrial:
    """What a compression trial was and what its file measured."""

    recipe: str = "none"  # the recipe's JSON, "none" for the model as it is
    file: str = ""  # relative to the run folder
    figures: dict[str, Any] = field(default_factory=dict)  # accuracy, bytes, predicted latency (own_compress)
    latency_kind: str = ""  # predicted or measured
    feasible: bool = False
    prune: dict[str, Any] | None = None
    error: str = ""
    same_as: int | None = None  # the earlier trial with the same recipe whose file and figures this one reuses

    def save(self, trial: optuna.Trial) -> None:
        for key, value in asdict(self).items():
            trial.set_user_attr(key, json.loads(json.dumps(value, default=str)))

    @classmethod
    def of(cls, trial: optuna.trial.FrozenTrial) -> RecipeTrial:
        known = {k: v for k, v in trial.user_attrs.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def study_settings(study: optuna.Study) -> dict[str, Any] | None:
    """The settings a compression study was started with (None: a new study)."""
    stored = study.user_attrs.get("settings")
    return stored if isinstance(stored, dict) else None


def save_study_settings(study: optuna.Study, settings: dict[str, Any]) -> None:
    study.set_user_attr("settings", json.loads(json.dumps(settings)))
