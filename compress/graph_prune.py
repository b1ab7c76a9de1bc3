"""Structured pruning of any PyTorch model through Torch-Pruning's dependency graph.

hwnas's own networks are pruned by their block table's coupling (:mod:`compress.coupling`); a
model from outside the grammar has no table, so the channels that must shrink together (a
residual stream, a depthwise conv and its producer, a concat's inputs, a norm's scale) are read
off Torch-Pruning's ``DependencyGraph`` instead, with hwnas's criteria (:data:`IMPORTANCE`) and
budgets: a share of channels, or pruned step by step until a cost (MACs, parameters, predicted
latency on a profile: any function of the module) is down to its target.

The classifier's outputs are never pruned. A group whose pruning breaks the forward pass (an
attention projection reshaped into heads, a view with a hard-coded size) is found by trying it
alone on a copy and is left dense, with the reason recorded; nothing is pruned blind.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from nas.core.errors import UserError

log = logging.getLogger(__name__)

IMPORTANCE: dict[str, Callable[[], Any]] = {
    "l1": lambda: tp.importance.MagnitudeImportance(p=1),
    "taylor": lambda: tp.importance.TaylorImportance(),
    "bn": lambda: tp.importance.BNScaleImportance(),
}
MAX_RATIO = 0.9  # no layer loses more than this share of its channels
STEPS = 40  # a budget is approached in steps of MAX_RATIO / STEPS of every layer's channels

Cost = Callable[[nn.Module], float]


@dataclass(frozen=True)
class GraphPruned:
    """What :func:`prune_any` did: the cost before and after (``cost`` is what the budget was in),
    per-layer output channels [before, after], and the layers left dense with why."""

    criterion: str
    cost: str
    before: float
    after: float
    target: float | None  # None: a fixed ratio of channels
    steps: int
    channels: dict[str, list[int]] = field(default_factory=dict)
    left_dense: dict[str, str] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return self.target is None or self.after <= self.target * (1 + 1e-9)


def _width(m: nn.Module) -> int | None:
    if isinstance(m, nn.modules.conv._ConvNd):
        return int(m.out_channels)
    if isinstance(m, nn.Linear):
        return int(m.out_features)
    return None


def widths(model: nn.Module) -> dict[str, int]:
    return {n: w for n, m in model.named_modules() if (w := _width(m)) is not None}


def output_layers(model: nn.Module, example: torch.Tensor) -> list[str]:
    """The classifier: the last conv or linear layer run, when it is as wide as the output."""
    ran: list[str] = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda mod, i, o: ran.append(names[mod])) for m in model.modules()
             if _width(m) is not None]
    try:
        with torch.no_grad():
            classes = int(model.eval()(example).shape[-1])
    finally:
        for h in hooks:
            h.remove()
    width = widths(model)
    return [ran[-1]] if ran and width[ran[-1]] == classes else []


def stages(model: nn.Module, example: torch.Tensor) -> list[str]:
    """The model's stages: its top-level submodules that hold prunable layers (the classifier's
    own module left out), descending through a lone wrapper; [] for a model with fewer than two."""
    classifier = set(output_layers(model, example))
    prefix, module = "", model
    while True:
        held = [(n, m) for n, m in module.named_children()
                if widths(m) and not {f"{prefix}{n}.{k}".strip(".") for k in widths(m)} <= classifier
                and f"{prefix}{n}" not in classifier]
        if len(held) != 1:
            return [f"{prefix}{n}" for n, _ in held] if len(held) > 1 else []
        prefix, module = f"{prefix}{held[0][0]}.", held[0][1]


def _pruner(model: nn.Module, example: torch.Tensor, criterion: str, ignored: list[str], *, ratio: float,
            steps: int = 1, ratio_dict: dict[str, float] | None = None, round_to: int | None = None,
            global_scope: bool = False) -> Any:
    modules = dict(model.named_modules())
    return tp.pruner.MetaPruner(
        model, example, importance=IMPORTANCE[criterion](), pruning_ratio=ratio, iterative_steps=steps,
        global_pruning=global_scope, max_pruning_ratio=MAX_RATIO,
        pruning_ratio_dict={modules[n]: r for n, r in (ratio_dict or {}).items()} or None,
        ignored_layers=[modules[n] for n in ignored], round_to=round_to)


def _roots(model: nn.Module, example: torch.Tensor, ignored: list[str]) -> list[str]:
    """The first layer of every prunable group of coupled channels."""
    names = {m: n for n, m in model.named_modules()}
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    modules = dict(model.named_modules())
    groups = graph.get_all_groups(ignored_layers=[modules[n] for n in ignored],
                                  root_module_types=[nn.modules.conv._ConvNd, nn.Linear])
    return [names[g[0].dep.target.module] for g in groups if g[0].dep.target.module in names]


def unsafe_groups(model: nn.Module, example: torch.Tensor, ignored: list[str]) -> dict[str, str]:
    """Groups that break the forward pass when pruned alone (tried on a copy each, by one channel
    and by half, so that divisibility rules such as a head count show): root -> why."""
    bad: dict[str, str] = {}
    roots = _roots(model, example, ignored)
    width = widths(model)
    for root in roots:
        others = [*ignored, *(r for r in roots if r != root)]  # alone: every other group's importance unread
        for ratio in (1.5 / max(2, width.get(root, 2)), 0.5):
            trial = copy.deepcopy(model)
            try:
                _pruner(trial, example, "l1", others, ratio=ratio).step()
                with torch.no_grad():
                    trial.eval()(example)
            except Exception as exc:  # noqa: BLE001 - any failure means: leave this group dense
                bad[root] = (f"pruning it breaks the forward pass ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:120]})")
                break
    return bad


def _run(model: nn.Module, example: torch.Tensor, criterion: str, ignored: list[str], *, ratio: float | None,
         cost: Cost, target: float | None, round_to: int | None,
         gradients: Callable[[nn.Module], None] | None, stage_ratios: dict[str, float] | None = None,
         global_scope: bool = False) -> int:
    """Prune ``model`` in place to ``ratio`` (per stage where ``stage_ratios`` says) or until
    ``cost`` <= ``target``; returns the steps taken."""
    if ratio is not None:
        pruner = _pruner(model, example, criterion, ignored, ratio=ratio, round_to=round_to, ratio_dict=stage_ratios,
                         global_scope=global_scope)
        if gradients is not None:
            gradients(model)
        pruner.step()
        return 1
    assert target is not None
    pruner = _pruner(model, example, criterion, ignored, ratio=MAX_RATIO, steps=STEPS, round_to=round_to,
                     global_scope=global_scope)
    steps = 0
    while steps < STEPS and cost(model) > target:
        if gradients is not None:
            gradients(model)
        pruner.step()
        steps += 1
    return steps


def prune_any(model: nn.Module, example: torch.Tensor, *, criterion: str = "l1", ratio: float | None = None,
              keep: float | None = None, cost: Cost, cost_name: str = "cost", round_to: int | None = None,
              gradients: Callable[[nn.Module], None] | None = None,
              stage_ratios: dict[str, float] | None = None, global_scope: bool = False) -> tuple[nn.Module, GraphPruned]:
    """A pruned copy of ``model``: ``ratio`` of every prunable layer's channels removed (the
    layers of a stage named in ``stage_ratios``: that stage's ratio), or pruned until ``cost`` is
    at most ``keep`` times its value before (``gradients(model)`` fills the gradients the taylor
    criterion reads, before each step). ``global_scope``: channels ranked across layers by their
    normalized importance (Torch-Pruning's global pruning; no layer loses more than ``MAX_RATIO``),
    so that a budget is met where channels matter least, instead of the same share of every layer."""
    if (ratio is None) == (keep is None):
        raise ValueError("give exactly one of ratio and keep")
    if criterion not in IMPORTANCE:
        raise ValueError(f"criterion {criterion!r}; allowed: {', '.join(IMPORTANCE)}")
    model = copy.deepcopy(model).eval()
    ignored = output_layers(model, example)
    left_dense = {n: "the classifier's outputs" for n in ignored}
    before = cost(model)
    target = None if keep is None else keep * before
    width = widths(model)
    work = copy.deepcopy(model)
    try:
        steps = _run(work, example, criterion, ignored, ratio=ratio, cost=cost, target=target, round_to=round_to,
                     gradients=gradients, stage_ratios=stage_ratios, global_scope=global_scope)
        with torch.no_grad():
            work.eval()(example)
    except Exception as exc:  # noqa: BLE001 - find the groups at fault, leave them dense, prune the rest
        log.info("pruning every group failed (%s); trying each group alone", type(exc).__name__)
        unsafe = unsafe_groups(model, example, ignored)
        left_dense |= unsafe
        ignored = [*ignored, *unsafe]
        work = copy.deepcopy(model)
        try:
            steps = _run(work, example, criterion, ignored, ratio=ratio, cost=cost, target=target,
                         round_to=round_to, gradients=gradients, stage_ratios=stage_ratios,
                         global_scope=global_scope)
            with torch.no_grad():
                work.eval()(example)
        except Exception as again:  # noqa: BLE001 - groups that fail only together: refuse in one line
            raise UserError(f"pruning this model breaks its forward pass even with {', '.join(unsafe) or 'no group'} "
                            f"left dense: {type(again).__name__}: {str(again).splitlines()[0][:160]}") from again
    after = widths(work)
    channels = {n: [w, after[n]] for n, w in width.items() if n in after and after[n] != w}
    return work.eval(), GraphPruned(criterion, cost_name, before, cost(work), target, steps, channels, left_dense)
