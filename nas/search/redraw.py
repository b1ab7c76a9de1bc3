"""A model-based sampler that draws at random after proposing a candidate already evaluated.

TPE and GP model what they have seen; in a small space, or once they have converged, they propose
the same architecture again and again. Each proposal is skipped as a duplicate
(:func:`nas.search.slots.check_duplicate`), and 50 in a row stop the worker with fewer trials than
asked (seen in CI: a 288-candidate test space, TPE, three workers, 11 of 12 trials). After a
duplicate, this worker's next trial is drawn by a random sampler instead; the model-based sampler
still sees every trial (its ``before_trial`` and ``after_trial`` run for all of them, so NSGA-II
keeps its generations), and takes over again from the trial after.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


class RedrawSampler(BaseSampler):
    """``base`` for every trial but those after a duplicate, which ``fallback`` draws."""

    def __init__(self, base: BaseSampler, fallback: BaseSampler) -> None:
        self.base, self.fallback = base, fallback
        self.redraw_next = False
        self._random: set[int] = set()

    def _for(self, trial: FrozenTrial) -> BaseSampler:
        return self.fallback if trial.number in self._random else self.base

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if self.redraw_next:
            self._random.add(trial.number)
            self.redraw_next = False
        self.base.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._random.discard(trial.number)
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
        self.fallback.reseed_rng()


def redraw_next(study: optuna.Study) -> None:
    """This worker proposed a duplicate: its next trial is drawn at random."""
    if isinstance(study.sampler, RedrawSampler):
        study.sampler.redraw_next = True
