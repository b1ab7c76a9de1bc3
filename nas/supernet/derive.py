"""The space a supernet trains, derived from the search space and its budgets.

Weight sharing ranks subnetworks only where the shared weights are trained for all of them. The
published designs keep the space narrow around what the budget admits: once-for-all (Cai et al.,
ICLR 2020) uses one block kind, expansions {3, 4, 6} and a largest network that is the teacher;
AttentiveNAS and AlphaNet give each stage a channel range of 1.5x or less. A space written for a
per-trial search is often far wider: on ``searches/supernet.yaml`` as first written (widths
0.25-1.25, three block kinds, expansion 1 beside 3-6) the largest subnetwork costs 15.6 M MACs and
2.96 MB against budgets of 2.5 M and 0.6 MB, and moving one step from the largest or smallest
took inherited accuracy from 87% to 18-62% (issue 29's diagnosis). :func:`derive_space` narrows a
space to those ranges:

- one block kind per stage (its first elastic one): kinds at one position would each be trained
  only by the random subnetworks that happen to pick them, and later layers would read three
  kinds' outputs;
- expansion 1 left out where larger ones are offered: at e=1 an inverted residual has no
  expansion conv, so its first hidden channels would mean the block's input, a second meaning
  that also rules out sorting channels by importance;
- the largest subnetwork brought within ``SLACK`` of every budget, by dropping the largest width
  first, then the largest expansion, kernel and resolution, in that order;
- widths kept within ``MAX_WIDTH_RANGE`` of the largest.

The same notes say why a space used as written (``supernet.space: given``) is too wide.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from nas.core.config import Budgets, SpaceConfig
from nas.cost.parts import PartCosts
from nas.space.kinds import block_kind
from nas.supernet.space import SupernetSpace, stage_kinds

SLACK = 1.5  # the largest subnetwork (the teacher, never a candidate) may exceed a budget this much
MAX_WIDTH_RANGE = 2.0  # largest width / smallest width kept
_SHRINK_ORDER = ("widths", "exp_ratios", "kernels", "resolutions")


@dataclass(frozen=True)
class DerivedSpace:
    space: SpaceConfig
    notes: tuple[str, ...]  # what derivation leaves out of the search space, and why


def _largest_over(space: SpaceConfig, budgets: Budgets, in_chs: int, num_classes: int, parts: PartCosts) -> str | None:
    """Why the largest subnetwork is too far over a budget, or None."""
    costs = parts.costs(SupernetSpace(space, in_chs=in_chs, num_classes=num_classes).largest())
    over = []
    if budgets.macs and costs.macs > SLACK * budgets.macs:
        over.append(f"{costs.macs / 1e6:.2f} M MACs against a budget of {budgets.macs / 1e6:.2f} M")
    if budgets.peak_memory_mb and costs.memory_mb > SLACK * budgets.peak_memory_mb:
        over.append(f"{costs.memory_mb:.2f} MB against a budget of {budgets.peak_memory_mb:.2f} MB")
    return ", ".join(over) or None


def _one_kind(space: SpaceConfig) -> tuple[SpaceConfig, list[str]]:
    stages, notes = [], []
    for i, (stage, kinds) in enumerate(zip(space.stages, stage_kinds(space))):
        elastic = [k for k in kinds if not block_kind(k).elastic_why] or list(kinds)
        if len(kinds) > 1:
            notes.append(f"stage {i}: block type {elastic[0]} only, {', '.join(k for k in kinds if k != elastic[0])} "
                         "left to a per-trial search (one kind per supernet, as once-for-all)")
        stages.append(dataclasses.replace(stage, block_types=(elastic[0],)))
    return dataclasses.replace(space, stages=tuple(stages)), notes


@functools.lru_cache(maxsize=16)  # a search start asks several times; the inputs are frozen
def derive_space(space: SpaceConfig, budgets: Budgets, *, in_chs: int, num_classes: int) -> DerivedSpace:
    """``space`` narrowed to what a supernet trains well under ``budgets`` (module docstring);
    deriving a derived space changes nothing."""
    parts = PartCosts()
    space, notes = _one_kind(space)
    if 1 in space.exp_ratios and len(space.exp_ratios) > 1:
        space = dataclasses.replace(space, exp_ratios=tuple(e for e in space.exp_ratios if e != 1))
        notes.append("expansion 1 left out (no expansion conv: its hidden channels would be the block's input)")
    while (why := _largest_over(space, budgets, in_chs, num_classes, parts)) is not None:
        name = next((n for n in _SHRINK_ORDER if len(getattr(space, n)) > 1), None)
        if name is None:
            notes.append(f"the largest subnetwork stays over budget ({why}): the budget is below the space's smallest "
                         "settings")
            break
        values = tuple(sorted(getattr(space, name)))
        space = dataclasses.replace(space, **{name: values[:-1]})  # type: ignore[arg-type]
        notes.append(f"{name} {values[-1]:g} left out: its largest subnetwork costs {why} (at most {SLACK:g}x)")
    top = max(space.widths)
    narrow = tuple(w for w in space.widths if w * MAX_WIDTH_RANGE >= top)
    if narrow != space.widths:
        notes.append(f"widths {', '.join(f'{w:g}' for w in space.widths if w not in narrow)} left out: widths span at "
                     f"most {MAX_WIDTH_RANGE:g}x (per-stage channel ranges of AttentiveNAS and once-for-all)")
        space = dataclasses.replace(space, widths=narrow)
    return DerivedSpace(space, tuple(notes))
