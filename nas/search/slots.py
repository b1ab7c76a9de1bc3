"""Many workers, one count: no candidate evaluated twice, and exactly the trials requested.

A trial first writes its candidate key (arch string and recipe), then looks at the others: a
candidate already finished or running elsewhere is skipped and the reuse recorded. Because every
trial writes before it reads, of two that drew the same candidate at the same moment at least one
sees the other. Then it takes a slot: it runs only while fewer than ``total`` trials are finished
or running ahead of it (lower numbers), waiting while running trials ahead may still fail; this is
what makes N workers stop at exactly ``total``.

>>> candidate_key("in_c1_r28-stem_k3_s1_c8-fc_c10", None)
'in_c1_r28-stem_k3_s1_c8-fc_c10|none'
"""
from __future__ import annotations

import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from nas.search.workers import recover_stale

KEY, SKIPPED, AT_CHANCE = "candidate", "skipped", "at_chance"  # user attributes
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class TrialSkipped(Exception):
    """The trial does not run: its candidate is a duplicate, or the study has enough trials."""


def candidate_key(arch: str, recipe_json: str | None) -> str:
    return f"{arch}|{recipe_json or 'none'}"


def skip(trial: optuna.Trial, reason: str) -> TrialSkipped:
    trial.set_user_attr(SKIPPED, reason)
    return TrialSkipped(reason)


def check_duplicate(trial: optuna.Trial, key: str) -> None:
    """Record ``key`` on the trial; raise TrialSkipped when another live trial holds it."""
    trial.set_user_attr(KEY, key)
    for other in trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING)):
        if other.number != trial.number and other.user_attrs.get(KEY) == key and SKIPPED not in other.user_attrs:
            state = "finished" if other.state in FINISHED else "running"
            raise skip(trial, f"duplicate of trial {other.number} ({state}): its result is the candidate's")


def wait_for_slot(trial: optuna.Trial, total: int, *, poll: float = 2.0,
                  sleep: Callable[[float], None] = time.sleep) -> None:
    """Return when this trial is among the first ``total``; raise TrialSkipped when the study
    already has ``total`` finished trials. Stale trials of dead workers are recovered meanwhile."""
    while True:
        trials = trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        finished = sum(t.state in FINISHED for t in trials)
        if finished >= total:
            raise skip(trial, f"surplus: the study already has {finished} finished trials of {total}")
        ahead = [t for t in trials if t.state == TrialState.RUNNING and t.number < trial.number
                 and SKIPPED not in t.user_attrs]
        if finished + len(ahead) < total:
            return
        sleep(poll)
        recover_stale(trial.study)


def counts(study: optuna.Study) -> tuple[int, int, int]:
    """(finished, failed, skipped) trials of a study; skipped trials are stored as failed."""
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    skipped = sum(SKIPPED in t.user_attrs for t in failed)
    return sum(t.state in FINISHED for t in trials), len(failed) - skipped, skipped


def candidate_of(trial: optuna.trial.FrozenTrial) -> str | None:
    """The candidate key a trial claimed (None: it claimed none)."""
    value = trial.user_attrs.get(KEY)
    return str(value) if value is not None else None


def skipped_reason(trial: optuna.trial.FrozenTrial) -> str | None:
    """Why a trial did not run (duplicate, surplus), or None."""
    reason = trial.user_attrs.get(SKIPPED)
    return None if reason is None else str(reason)


def flagged_at_chance(trial: optuna.trial.FrozenTrial) -> bool:
    return bool(trial.user_attrs.get(AT_CHANCE, False))


def flag_at_chance(trial: optuna.Trial) -> None:
    trial.set_user_attr(AT_CHANCE, True)


def at_chance(accuracy: float, classes: int) -> bool:
    """Accuracy no better than guessing (within 5 points of 1/classes): the training budget was
    too small, often BatchNorm statistics that had not settled."""
    return accuracy < 1.0 / classes + 0.05
