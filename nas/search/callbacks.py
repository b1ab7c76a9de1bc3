"""Callbacks of a search worker's loop: when to stop, and the run's tables kept current.

>>> StopRule(12).total
12
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from nas.core.config import Budgets
from nas.core.errors import UserError
from nas.search.report import write_outputs
from nas.search.slots import counts, flagged_at_chance, skipped_reason
from nas.search.workers import recover_stale

log = logging.getLogger(__name__)

MAX_SKIPS_IN_A_ROW = 50  # a space this small has been searched out


@dataclass
class StopRule:
    """Stop this worker once the study has ``total`` finished trials, or enough finished and
    running (other workers') trials to reach it, or as many failures as trials wanted, or when
    the sampler keeps drawing candidates already evaluated."""

    total: int
    skips_in_a_row: int = field(default=0)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        skipped = skipped_reason(trial) or ""
        self.skips_in_a_row = self.skips_in_a_row + 1 if skipped else 0
        recover_stale(study)  # a dead worker's trial must not count as running: it would stop us short
        finished, failed, _ = counts(study)
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        reasons = {"enough trials finished or running": finished + running >= self.total,
                   "as many failures as trials wanted": failed >= self.total,
                   "the study has enough trials": skipped.startswith("surplus"),
                   f"{MAX_SKIPS_IN_A_ROW} duplicate candidates in a row": self.skips_in_a_row >= MAX_SKIPS_IN_A_ROW}
        stop = [why for why, hit in reasons.items() if hit]
        if stop:
            log.info("worker stops: %s (%d finished, %d running, %d failed)", stop[0], finished, running, failed)
            study.stop()


@dataclass
class ChanceGuard:
    """Stop the search with a one-line error once most of at least ``minimum`` complete trials
    score at chance level: ranking them would rank noise."""

    minimum: int = 5

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        chance = sum(flagged_at_chance(t) for t in complete)
        if len(complete) >= self.minimum and chance > len(complete) / 2:
            raise UserError(f"{chance} of {len(complete)} complete trials score at chance level on validation: the "
                            f"training budget is too small to rank architectures; raise train.epochs or "
                            f"train.train_subset (finished trials are kept)")


@dataclass
class OutputsCallback:
    """Rewrite trials.csv, front.csv, front.png and models/ after each trial (atomically), so a
    killed run keeps its tables; a failure to write is logged and the search goes on."""

    run_dir: Path
    budgets: Budgets
    baselines: optuna.Study | None = None
    store: FileSystemArtifactStore | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            write_outputs(self.run_dir, budgets=dataclasses.asdict(self.budgets), search=study, baselines=self.baselines,
                          store=self.store)
        except Exception as exc:
            log.warning("could not update the run's tables after trial %d: %s", trial.number, exc)
