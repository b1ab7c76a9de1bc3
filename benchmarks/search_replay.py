"""Replays of the search-efficiency benchmark: one strategy, one seed, against the surrogate of
benchmarks/search_table.py, on a simulated clock of one worker.

Everything but the training is hwnas's own: the sampler (``nas.search.study.make_sampler`` of the
benchmark config with ``search.sampler`` set), the space (``SearchSpace.sample``), the exact
costs and the budget gate (``count_costs``, ``budget_violations``, constraints on the trial as the
search sets them), duplicate candidates skipped (the next one drawn at random), and early stopping decided by the search's own
``RungJudge`` on the replayed study. The surrogate supplies what training would: the accuracy after
each epoch and of the file, seconds per epoch and for the file's evaluation, and host latency. The
clock advances by those seconds, by the median rejection time for a candidate over budget, and by
the sampler's own time to propose (measured here, so a slow sampler pays for it).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from nas.core.config import SearchConfig
from nas.cost.costs import ModelCosts
from nas.search.evaluate import budget_violations
from nas.search.mo_asha import EarlyStopped
from nas.search.redraw import redraw_next
from nas.search.rungs import RungJudge
from nas.search.study import directions, make_sampler
from nas.space.arch import ArchSpec
from nas.space.sampler import SearchSpace

from search_table import Surrogate, features

log = logging.getLogger(__name__)
# export and host timing of an untrained quickstart network (what early stopping ranks latency on):
# 0.19-0.32 s export + 0.03-0.05 s timing, measured on this machine beside the real runs
UNTRAINED_LATENCY_S = 0.3


@dataclass
class Event:
    """A trial that completed on the simulated clock (feasible or not)."""

    end_s: float
    arch: str
    val: float
    test: float
    latency_ms: float
    macs: float
    feasible: bool


@dataclass
class Replay:
    cfg: SearchConfig
    surrogate: Surrogate
    budget_s: float
    price: Any  # spec -> ModelCosts (cached by the caller)
    in_chs: int
    classes: int
    curves: bool = False  # as the real runs: every epoch's validation accuracy measured (benchmarks/search_real.py)
    events: list[Event] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"trained": 0, "stopped": 0, "rejected": 0,
                                                            "duplicates": 0})
    sampler_s: float = 0.0
    violations: dict[str, float] = field(default_factory=dict)  # of the last candidate gated

    def run(self) -> list[Event]:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(directions=directions(self.cfg.search.objectives),
                                    sampler=make_sampler(self.cfg, worker=0))
        space = SearchSpace(self.cfg.space, in_chs=self.in_chs, num_classes=self.classes)
        rng = np.random.default_rng(self.cfg.seed + 7919)
        clock, seen = 0.0, set()
        while clock < self.budget_s and sum(self.counts.values()) < 5000:
            begun = time.perf_counter()
            trial = study.ask()
            spec = space.sample(trial)
            spent = time.perf_counter() - begun
            self.sampler_s += spent
            clock += spent
            if spec.format() in seen:
                self.counts["duplicates"] += 1
                redraw_next(study)  # as the search does: the next candidate is drawn at random
                study.tell(trial, state=TrialState.FAIL)
                continue
            seen.add(spec.format())
            clock = self._evaluate(study, trial, spec, clock, rng) + self.surrogate.between_s
        return [e for e in self.events if e.end_s <= self.budget_s]

    def gate(self, study: optuna.Study, trial: optuna.Trial, spec: ArchSpec) -> ModelCosts | None:
        """The search's budget gate: constraints set on the trial as the search sets them; None (the
        trial told PRUNED) when over budget. The violations stay in ``self.violations``."""
        costs: ModelCosts = self.price(spec)
        values = {"macs": float(costs.macs), "peak_memory_mb": round(costs.memory_mb, 6)}
        self.violations = budget_violations(values, self.cfg.search.budgets)
        for key, excess in self.violations.items():
            trial.set_constraint(key, excess)
        if any(v > 0 for v in self.violations.values()):
            self.counts["rejected"] += 1
            study.tell(trial, state=TrialState.PRUNED)
            return None
        return costs

    def _evaluate(self, study: optuna.Study, trial: optuna.Trial, spec: ArchSpec, clock: float,
                  rng: np.random.Generator) -> float:
        costs = self.gate(study, trial, spec)
        if costs is None:
            return clock + self.surrogate.reject_s
        violations = self.violations
        figures = self.surrogate.draw(features(spec, costs), rng)
        stopping = self.cfg.search.early_stopping
        if stopping is not None:
            judge = RungJudge(trial, stopping, tuple(n for n in self.cfg.search.objectives if n != "accuracy"))
            rung_costs = [figures["latency_ms"] if n == "latency_ms" else float(costs.macs)
                          for n in self.cfg.search.objectives if n != "accuracy"]
            clock += UNTRAINED_LATENCY_S  # the untrained file exported and timed for its latency
            done = 0
            for epoch in stopping.rungs:
                clock += (epoch - done) * figures["epoch_s"] + self.surrogate.eval_s
                done = epoch
                try:
                    judge(epoch, figures[f"acc_e{epoch}"], rung_costs)
                except EarlyStopped:
                    self.counts["stopped"] += 1
                    study.tell(trial, state=TrialState.PRUNED)
                    return clock
            clock += (3 - done) * figures["epoch_s"] + figures["after_s"]
        else:
            clock += 3 * figures["epoch_s"] + figures["after_s"]
        if self.curves:
            clock += 3 * self.surrogate.eval_s
        self.counts["trained"] += 1
        objective = {"accuracy": figures["val_file"], "latency_ms": figures["latency_ms"], "macs": float(costs.macs)}
        study.tell(trial, [objective[n] for n in self.cfg.search.objectives])
        self.events.append(Event(clock, spec.format(), figures["val_file"], figures["test_file"], figures["latency_ms"],
                                 float(costs.macs), all(v <= 0 for v in violations.values())))
        return clock
