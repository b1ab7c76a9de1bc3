"""Structured pruning that removes channels physically, so the pruned model is smaller and faster:
the schedule (how many channels each group keeps, to a ratio or a cost budget), over the coupled
groups of :mod:`compress.coupling`, scored by :mod:`compress.importance` and cut by
:mod:`compress.surgery` (Torch-Pruning's four roles).
"""
from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from compress.coupling import Group, channel_groups, kept_channels, slot_scores
from compress.importance import CRITERIA, channel_importance, slimming_penalty
from compress.surgery import apply_keep
from nas.core.errors import UserError
from nas.cost.costs import count_macs

__all__ = ["CRITERIA", "SCOPES", "PruneResult", "parameter_count", "prune", "prune_to_budget", "prune_to_macs",
           "slimming_penalty"]
log = logging.getLogger(__name__)

SCOPES = ("per-layer", "global")


def _round_keep(group: Group, wanted: float, round_to: int) -> int:
    n, unit = group.channels, group.unit
    step = unit if unit > 1 else round_to
    keep = max(step, int(math.ceil(wanted / step - 1e-9)) * step)
    if unit > 1 and keep % unit:
        keep = (keep // unit + 1) * unit
    return min(n, keep)


@dataclass(frozen=True)
class PruneResult:
    kept: dict[str, tuple[int, int]]  # group name -> (before, after)
    dense: list[str]


def prune(model: nn.Module, *, ratio: float, criterion: str = "l1", scope: str = "per-layer", round_to: int = 8,
          taylor_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
          importance: list[torch.Tensor] | None = None, streams: bool = False) -> PruneResult:
    """Remove ``ratio`` of the hidden channels, in place. ``per-layer``: each group loses that
    share; ``global``: one threshold over all groups' normalised scores. Kept counts round up
    to ``round_to`` (or to g*g for shuffled groups). ``ratio`` 0 changes nothing. ``importance``
    (per group, as :func:`channel_importance` returns) skips computing the criterion."""
    if not 0 <= ratio < 1:
        raise UserError(f"pruning ratio {ratio} not allowed; allowed: 0 <= ratio < 1")
    if scope not in SCOPES:
        raise UserError(f"pruning scope {scope!r} not allowed; allowed: {', '.join(SCOPES)}")
    groups, dense = channel_groups(model, streams=streams)
    if ratio == 0 or not groups:
        return PruneResult({g.name: (g.channels, g.channels) for g in groups}, dense)
    if importance is None:
        importance = channel_importance(groups, criterion, taylor_batches, model)
    scores = [slot_scores(g, s) for g, s in zip(groups, importance)]
    if scope == "global":
        normed = [s / s.max().clamp_min(1e-12) for s in scores]
        threshold = torch.quantile(torch.cat(normed), ratio)
        wanted = [float((s > threshold).sum()) / len(s) * g.channels for g, s in zip(groups, normed)]
    else:
        wanted = [(1 - ratio) * g.channels for g in groups]
    kept = {}
    for group, score, want in zip(groups, scores, wanted):
        before = group.channels
        keep = _round_keep(group, want, round_to)
        if keep < before:
            apply_keep(group, kept_channels(group, score, keep))
        kept[group.name] = (before, keep)
    log.info("pruned %d groups (%s, %s, ratio %.2f); dense: %d", len(groups), criterion, scope, ratio, len(dense))
    return PruneResult(kept, dense)


def prune_to_macs(model: nn.Module, fraction: float, input_shape: tuple[int, ...], *, criterion: str = "l1",
                  scope: str = "per-layer", round_to: int = 8,
                  taylor_batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                  streams: bool = False) -> PruneResult:
    """Prune, in place, to about ``fraction`` of the model's MACs."""
    x = torch.zeros(input_shape)
    return prune_to_budget(model, fraction, lambda m: count_macs(m, x), criterion=criterion, scope=scope,
                           round_to=round_to, taylor_batches=taylor_batches, streams=streams)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune_to_budget(model: nn.Module, fraction: float, cost: Callable[[nn.Module], float], *, criterion: str = "l1",
                    scope: str = "per-layer", round_to: int = 8,
                    taylor_batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                    streams: bool = False) -> PruneResult:
    """Prune, in place, to about ``fraction`` of ``cost(model)`` (MACs, parameters...), by bisection
    on the ratio; channel rounding makes the result land near, not on, the target."""
    base = cost(model)
    # Copies share the weights, so the criterion (Taylor: forward and backward passes) is computed once.
    importance = channel_importance(channel_groups(model, streams=streams)[0], criterion, taylor_batches, model)
    lo, hi = 0.0, 0.95
    for _ in range(12):
        mid = (lo + hi) / 2
        trial = copy.deepcopy(model)
        prune(trial, ratio=mid, criterion=criterion, scope=scope, round_to=round_to, importance=importance,
              streams=streams)
        if cost(trial) > fraction * base:
            lo = mid
        else:
            hi = mid
    # the smallest ratio found that reaches the target (or 0.95, the most this will prune)
    return prune(model, ratio=hi, criterion=criterion, scope=scope, round_to=round_to, importance=importance,
                 streams=streams)
