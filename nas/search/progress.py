"""Progress of a search as text lines: trial n/N, arch, accuracy, latency, feasibility, ETA.

Pure formatting over Optuna's frozen trials; the CLI decides where the lines go.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import optuna

from nas.search.record import CandidateResult, result_of
from nas.search.slots import FINISHED, counts, flagged_at_chance, skipped_reason


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class Progress:
    """Call :meth:`line` after each trial; it tracks elapsed time, ETA and the best so far."""

    total: int
    already_done: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished_here: int = 0

    def start_line(self, number: int, arch: str) -> str:
        return f"[{self.already_done + self.finished_here + 1:>3}/{self.total}] trial {number} start  {arch}"

    def line(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
        """The line of a trial that ended; n/N and the ETA count every worker's finished trials."""
        if trial.state in FINISHED:
            self.finished_here += 1
        done = max(self.already_done + self.finished_here, counts(study)[0])
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(1, done - self.already_done) * max(0, self.total - done)
        took = trial.duration.total_seconds() if trial.duration else 0.0
        return (f"[{done:>3}/{self.total}] trial {trial.number}  {_outcome(trial)}  {took:.1f}s | elapsed "
                f"{_clock(elapsed)} ETA {_clock(eta)} | best {self.best(study)}")

    @staticmethod
    def best(study: optuna.Study) -> str:
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        feasible = [(t.number, r) for t in complete if (r := result_of(t)) is not None and r.feasible]
        if not feasible:
            return "none feasible yet"
        number, top = max(feasible, key=lambda pair: pair[1].val_accuracy or 0.0)
        return f"trial {number} {_acc(top.test_accuracy)} @ {top.latency_ms or 0.0:.3f} ms"


def _acc(value: float | None) -> str:
    return f"acc {100 * (value or 0.0):.1f}%"


def _pred(r: CandidateResult) -> str:
    if r.latency_kind != "predicted":
        return ""
    return " (pred, EXTRAPOLATED)" if r.latency_caveat else " (pred)"


def _outcome(trial: optuna.trial.FrozenTrial) -> str:
    r = result_of(trial)
    if trial.state == optuna.trial.TrialState.COMPLETE and r is not None:
        status = "feasible" if r.feasible else f"INFEASIBLE ({r.infeasible_reason})"
        if r.export_errors:
            status += f"  ({r.export_errors})"
        if flagged_at_chance(trial):
            status += "  WARNING: accuracy at chance level (training budget too small?)"
        macs = r.costs.macs if r.costs else 0
        return (f"{_acc(r.test_accuracy)} (val {100 * (r.val_accuracy or 0.0):.1f}%)  lat {r.latency_ms or 0.0:.3f} ms"
                f"{_pred(r)}  MACs {macs / 1e6:.2f}M  {status}")
    if trial.state == optuna.trial.TrialState.PRUNED and r is not None and r.stopped_at_rung is not None:
        return f"stopped early at {r.stop_reason}"
    if trial.state == optuna.trial.TrialState.PRUNED:
        return f"rejected before training: {r.infeasible_reason if r else '?'}"
    if skipped_reason(trial) is not None:
        return f"skipped: {skipped_reason(trial)}"
    return f"FAILED: {r.error if r and r.error else 'see log'}"
