"""How important each channel of a group is: ``l1`` (filter L1 norm, Li et al. 2017), ``taylor``
(|mean of activation x gradient| over batches, Molchanov et al. 2017), ``bn`` (|BatchNorm scale|,
network slimming; train with :func:`slimming_penalty` for its L1 on the scales)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from compress.coupling import Group, channel_groups
from nas.core.errors import UserError
from nas.core.vocab import PRUNE_CRITERIA as CRITERIA

__all__ = ["CRITERIA", "channel_importance", "slimming_penalty"]


def _total(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """The sum of tensors (a stream group's channels sum over its producers)."""
    out: torch.Tensor | None = None
    for t in tensors:
        out = t if out is None else out + t
    return out if out is not None else torch.zeros(())


def channel_importance(groups: list[Group], criterion: str,
                       taylor_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
                       model: nn.Module | None = None) -> list[torch.Tensor]:
    """Importance of each pre-shuffle channel of each group."""
    if criterion == "l1":
        return [_total(s.conv.weight.detach().abs().flatten(1).sum(1) for s in g.sources) for g in groups]
    if criterion == "bn":
        return [_total(s.bn.weight.detach().abs() for s in g.sources) for g in groups]
    if criterion == "taylor":
        if taylor_batches is None or model is None:
            raise UserError("the taylor criterion needs training batches to accumulate activation x gradient")
        return _taylor(groups, taylor_batches, model)
    raise UserError(f"pruning criterion {criterion!r} is not supported; allowed: {', '.join(CRITERIA)}")


def _taylor(groups: list[Group], batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
            model: nn.Module) -> list[torch.Tensor]:
    scores = [torch.zeros(g.channels) for g in groups]
    outputs: dict[tuple[int, int], torch.Tensor] = {}
    hooks = []
    for i, g in enumerate(groups):
        for k, source in enumerate(g.sources):  # a stream's channels: summed over its producers
            def keep(_m: nn.Module, _inp: object, out: torch.Tensor, key: tuple[int, int] = (i, k)) -> None:
                out.retain_grad()
                outputs[key] = out
            hooks.append(source.register_forward_hook(keep))
    was_training = model.training
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    count = 0
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            for (i, _), out in outputs.items():
                # Molchanov et al.: |mean over positions of activation x gradient|, averaged over the batch
                assert out.grad is not None  # retained by the hook, filled by backward()
                scores[i] += (out.detach() * out.grad).mean(dim=(2, 3)).abs().mean(0)
            count += 1
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if count == 0:
        raise UserError("the taylor criterion got no batches")
    # layer-wise L2 normalisation, as in the paper, so scores compare across layers
    return [s / count / (s / count).norm().clamp_min(1e-12) for s in scores]


def slimming_penalty(strength: float) -> Callable[[nn.Module], torch.Tensor]:
    """Network slimming's L1 penalty on the BatchNorm scales of prunable producers, to add to the loss."""
    def penalty(model: nn.Module) -> torch.Tensor:
        groups, _ = channel_groups(model)
        return strength * _total(s.bn.weight.abs().sum() for g in groups for s in g.sources)
    return penalty
