"""Early stopping across objectives on a shared study (``search.early_stopping``): the judge of
one trial at its rungs, reading what every worker has stored.

At a rung, the trial first stores its validation accuracy there (``val_accuracy_epoch_<E>``) and
its costs (``rung_costs``, objective order), so the trials of other workers see it; then it reads
every trial of the study that reached the same rung (running, finished or stopped; a failed trial
is left out, its worker may have died mid-write) and continues when it is in the best
``ceil(n / eta)`` of them by :func:`nas.search.mo_asha.order`. With fewer than ``min_trials``
at the rung (this one included) nothing is stopped. Asynchronous: a worker never waits for a rung
to fill, and the decision uses only what the storage holds at that moment, so any number of
workers on one study decide consistently with what each saw.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from nas.core.config import EarlyStopping
from nas.search.mo_asha import EarlyStopped, Point, kept, order
from nas.search.record import RUNG

log = logging.getLogger(__name__)

COSTS = "rung_costs"
_COUNTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def at_rung(study: optuna.Study, epoch: int) -> dict[int, Point]:
    """Trials of ``study`` that reached rung ``epoch``: number -> (-accuracy, *costs)."""
    out = {}
    for trial in study.get_trials(deepcopy=False, states=_COUNTED):
        value, costs = trial.user_attrs.get(f"{RUNG}{epoch}"), trial.user_attrs.get(COSTS)
        if value is not None and costs is not None:
            out[trial.number] = (-float(value), *map(float, costs))
    return out


@dataclass
class RungJudge:
    """Called by the evaluation at each epoch of ``config.rungs`` (:data:`nas.search.evaluate.RungHook`)."""

    trial: optuna.Trial
    config: EarlyStopping
    cost_names: tuple[str, ...]

    def __call__(self, epoch: int, accuracy: float, costs: Sequence[float]) -> None:
        accuracy = round(accuracy, 5)  # as stored, so every worker ranks the same figures
        self.trial.set_user_attr(COSTS, [float(c) for c in costs])
        self.trial.set_user_attr(f"{RUNG}{epoch}", accuracy)
        points = at_rung(self.trial.study, epoch)
        points[self.trial.number] = (-accuracy, *map(float, costs))
        numbers = sorted(points)
        if len(numbers) < self.config.min_trials:
            log.info("trial %d rung %d: %d trial(s) at the rung, fewer than %d: continues", self.trial.number, epoch,
                     len(numbers), self.config.min_trials)
            return
        place = order([points[n] for n in numbers]).index(numbers.index(self.trial.number))
        best = kept(len(numbers), self.config.eta)
        if place < best:
            return
        on = ", ".join(("accuracy", *self.cost_names))
        raise EarlyStopped(epoch, f"rung epoch {epoch}: validation accuracy {100 * accuracy:.2f}%, "
                                  f"{_ordinal(place + 1)} of {len(numbers)} trials at the rung by ({on}); "
                                  f"the best {best} continue (eta {self.config.eta})")
