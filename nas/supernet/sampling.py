"""The random subnetworks of each supernet training step, drawn where the search will look.

Uniform draws ignore the budget: on the first supernet space 55% of them were over it, so much of
the training went to subnetworks no search keeps, and the MACs of uniform draws pile up in the
middle of the range. ``sampling: macs`` draws as AttentiveNAS does (Wang et al., CVPR 2021,
FLOPs-targeted sampling): a MAC target uniform between the smallest subnetwork and the budget,
then the candidate closest to it among ``CANDIDATES`` uniform draws that meet every budget
(MACs, and weights plus peak activations where ``peak_memory_mb`` is set), priced exactly by
:class:`nas.cost.parts.PartCosts`. All subnetworks of a step run at one resolution drawn for the
batch (once-for-all's elastic resolution), the largest included, so each student distils from
the teacher's outputs on the very images it sees.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from nas.core.config import Budgets
from nas.cost.parts import PartCosts
from nas.space.arch import ArchSpec
from nas.supernet.space import SupernetSpace

CANDIDATES = 8  # uniform draws per MAC target (AttentiveNAS draws a few and keeps the nearest)
_TRIES = 20  # rounds of CANDIDATES draws before falling back to the smallest subnetwork


def at(spec: ArchSpec, resolution: int) -> ArchSpec:
    return dataclasses.replace(spec, resolution=resolution)


class SubnetSampler:
    """Draws a step's resolution and its random subnetworks (``mode`` ``macs`` or ``uniform``)."""

    def __init__(self, space: SupernetSpace, budgets: Budgets, mode: str = "macs") -> None:
        self.space, self.budgets, self.mode = space, budgets, mode
        self.costs = PartCosts()

    def describe(self) -> dict[str, object]:
        """What the draws depend on (the training checkpoint's fingerprint holds it)."""
        return {"mode": self.mode, "candidates": CANDIDATES, "budgets": dataclasses.asdict(self.budgets)}

    def resolution(self, rng: np.random.Generator) -> int:
        resolutions = self.space.cfg.resolutions
        return int(resolutions[int(rng.integers(len(resolutions)))])

    def fits(self, spec: ArchSpec) -> bool:
        costs, b = self.costs.costs(spec), self.budgets
        return (not b.macs or costs.macs <= b.macs) and (not b.peak_memory_mb or costs.memory_mb <= b.peak_memory_mb)

    def draw(self, rng: np.random.Generator, resolution: int) -> ArchSpec:
        """One random subnetwork at ``resolution``."""
        if self.mode == "uniform":
            return at(self.space.random(rng), resolution)
        low = self.costs.costs(at(self.space.smallest(), resolution)).macs
        high = self.budgets.macs or self.costs.costs(at(self.space.largest(), resolution)).macs
        target = rng.uniform(low, max(low, high))
        for _ in range(_TRIES):
            feasible = [s for s in (at(self.space.random(rng), resolution) for _ in range(CANDIDATES)) if self.fits(s)]
            if feasible:
                return min(feasible, key=lambda s: abs(self.costs.costs(s).macs - target))
        return at(self.space.smallest(), resolution)
