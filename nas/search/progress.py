"""Progress of a search as text lines: trial n/N, arch, accuracy, latency, feasibility, ETA.

Pure formatting over Optuna's frozen trials; the CLI decides where the lines go.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import optuna

from nas.search.study import FINISHED


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
        if trial.state in FINISHED:
            self.finished_here += 1
        done = self.already_done + self.finished_here
        elapsed = time.perf_counter() - self.started
        left = self.total - done
        eta = elapsed / max(1, self.finished_here) * left
        a = trial.user_attrs
        if trial.state == optuna.trial.TrialState.COMPLETE:
            status = "feasible" if a.get("feasible") else f"INFEASIBLE ({a.get('infeasible_reason')})"
            what = (f"acc {a['test_accuracy'] * 100:.1f}% (val {a['val_accuracy'] * 100:.1f}%)  "
                    f"lat {a['latency_ms']:.3f} ms{' (pred)' if a.get('latency_kind') == 'predicted' else ''}  "
                    f"MACs {a['macs'] / 1e6:.2f}M  {status}")
        elif trial.state == optuna.trial.TrialState.PRUNED:
            what = f"rejected before training: {a.get('infeasible_reason', '?')}"
        else:
            what = f"FAILED: {a.get('error', 'see log')}"
        took = trial.duration.total_seconds() if trial.duration else 0.0
        return (f"[{done:>3}/{self.total}] trial {trial.number}  {what}  {took:.1f}s | elapsed {_clock(elapsed)} "
                f"ETA {_clock(eta)} | best {self.best(study)}")

    @staticmethod
    def best(study: optuna.Study) -> str:
        feasible = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                    if t.user_attrs.get("feasible")]
        if not feasible:
            return "none feasible yet"
        top = max(feasible, key=lambda t: t.user_attrs["val_accuracy"])
        return f"trial {top.number} acc {top.user_attrs['test_accuracy'] * 100:.1f}% @ {top.user_attrs['latency_ms']:.3f} ms"
