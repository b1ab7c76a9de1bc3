"""The supernet as one strategy of the search-efficiency benchmark (issue 29).

A replay of a search on the trained supernet of benchmarks/supernet.py (Fashion-MNIST, the
quickstart's data; its space is the quickstart space derived to the same budgets, so every
subnetwork is an architecture of the benchmark's table space). The sampler (TPE, the best per-trial
sampler), the budget gate and duplicate handling are those of the per-trial replays; what differs
is what a candidate costs and scores:

- the simulated clock starts at the supernet's training seconds, divided by the number of device
  profiles searched from it (``supernet``: 1, its cost paid by this search alone;
  ``supernet/amortised4``: the four fronts benchmarks/supernet.py searches from it);
- a candidate's accuracy is real: the subnetwork extracted, its BatchNorm re-estimated on
  ``supernet.bn_images`` training images and scored on the validation and test splits (PyTorch;
  an fp32 file scores the same), cached per architecture; its clock cost is the measured seconds
  of that extraction, re-estimation and validation scoring, plus the table surrogate's export,
  file evaluation and latency measurement seconds (the same work as a trained candidate's);
- host latency is the table surrogate's, as for every strategy.
The search sees inherited validation accuracy (hypervolume over time, time to random's); the
test-front figure is the front it chose, retrained alone at the proxy budget (the surrogate's test
accuracy of those architectures, as for the per-trial strategies' candidates), since a supernet's
front is retrained before it is deployed; that retraining (front size x one proxy training) is
not on the clock.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna

from nas.core.files import write_atomic
from nas.data.splits import Splits
from nas.space.arch import ArchSpec
from nas.supernet.store import SupernetFile

from search_replay import Event, Replay
from search_table import features
from supernet_rank import inherited_accuracy

STRATEGIES = {"supernet": 1, "supernet/amortised4": 4}  # strategy: device profiles sharing the training


@dataclass
class InheritedScores:
    """Validation accuracy of subnetworks with inherited weights, and the seconds to extract,
    re-estimate and validate each; cached per architecture in ``cache`` (a test accuracy too where
    an earlier version scored one: the replays' test figures are the retrained front's)."""

    supernet: SupernetFile
    splits: Splits
    bn_images: int
    seed: int
    cache: Path
    done: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cache.exists():
            self.done = json.loads(self.cache.read_text())

    def __call__(self, spec: ArchSpec) -> tuple[float, float]:
        """Validation accuracy and seconds to extract, re-estimate and validate."""
        key = spec.format()
        if key not in self.done:
            started = time.perf_counter()
            val = inherited_accuracy(self.supernet.net, spec, self.splits, bn_images=self.bn_images, seed=self.seed)
            self.done[key] = [val, float("nan"), time.perf_counter() - started]  # test not scored: the front is retrained
            if len(self.done) % 20 == 0:
                self.save()
        return self.done[key][0], self.done[key][-1]

    def save(self) -> None:
        write_atomic(self.cache, json.dumps(self.done).encode())


@dataclass
class SupernetReplay(Replay):
    """A replay whose candidates inherit their weights (module docstring)."""

    scores: InheritedScores | None = None
    start_s: float = 0.0  # the supernet's training seconds over the profiles sharing it

    def _evaluate(self, study: optuna.Study, trial: optuna.Trial, spec: ArchSpec, clock: float,
                  rng: np.random.Generator) -> float:
        assert self.scores is not None
        clock = max(clock, self.start_s)  # nothing is scored before the supernet exists
        costs = self.gate(study, trial, spec)
        if costs is None:
            return clock + self.surrogate.reject_s
        figures = self.surrogate.draw(features(spec, costs), rng)
        val, seconds = self.scores(spec)
        clock += seconds + figures["after_s"]
        self.counts["trained"] += 1  # "trained": scored, here by inheriting
        objective = {"accuracy": val, "latency_ms": figures["latency_ms"], "macs": float(costs.macs)}
        study.tell(trial, [objective[n] for n in self.cfg.search.objectives])
        # the test figure is the surrogate's for this architecture trained alone at the proxy budget: the
        # front's quality after retraining (what a user deploys)
        self.events.append(Event(clock, spec.format(), val, figures["test_file"], figures["latency_ms"],
                                 float(costs.macs), True))
        return clock
