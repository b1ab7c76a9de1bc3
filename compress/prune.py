"""Structured pruning that removes channels physically, so the pruned model is smaller and faster.

A *channel group* is a set of channels that must be removed together. hwnas prunes the hidden
channels inside blocks: a producer 1x1 conv (possibly grouped), an optional channel shuffle, a
depthwise conv, an optional squeeze-and-excite, and a consumer 1x1 conv (possibly grouped):

- MobileNetV2 inverted residuals with an expansion (expand -> dw -> [SE] -> project),
- ShuffleNetV2 units (the transformed branch's 1x1 -> dw -> 1x1),
- ShuffleNetV1 units and FBNet blocks (grouped 1x1 -> shuffle -> dw -> grouped 1x1).

It also prunes the network's head: the 1x1 head conv's output channels, which pass through global
average pooling into the classifier (the consumer, a linear layer). In a MobileNet-style network
the head holds a large share of the parameters.

And it prunes the channels between blocks where residual adds couple them (a :class:`StreamGroup`):
a run of inverted residuals (one that changes channels or stride, then the residual ones after
it) sums every block's projection into one stream, so the same channels go from every
projection, from the expand conv of every residual block that reads the stream, and from the
conv that reads it after the run (the next block's expand conv, or the head conv). A run whose
stream feeds anything else (a depthwise conv of an expansion-1 block, a ShuffleNet unit, the
classifier directly) is left dense and reported. Grouped convs with a shuffle between them stay exact: with ``n = g * g * r``
hidden channels, channel (group a, slot j) lands after the shuffle in consumer group ``j // r``;
keeping the same slots in every producer group, the same number in each block of ``r`` slots,
keeps every surviving weight where it was. Hidden sizes that do not divide by ``g * g`` are left
dense (reported). Stage-level channels (the residual stream) are not pruned.

Criteria: ``l1`` (filter L1 norm, Li et al. 2017), ``taylor`` (|mean of activation x gradient|
over batches, Molchanov et al. 2017), ``bn`` (|BatchNorm scale|, network slimming; train with
:func:`slimming_penalty` for its L1 on the scales).
"""
from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from nas.space.blocks import (
    ChannelShuffle,
    ConvBnAct,
    FBNetBlock,
    InvertedResidual,
    ShuffleUnit,
    ShuffleV2Unit,
    SqueezeExcite,
)
from nas.space.builder import Net
from nas.core.errors import UserError

log = logging.getLogger(__name__)

CRITERIA = ("l1", "taylor", "bn")
SCOPES = ("per-layer", "global")


@dataclass
class ChannelGroup:
    """Channels that ``owner[producer]`` (a conv + BN block) produces and ``owner[consumer]``
    consumes: a conv + BN block inside a block (integer keys into its Sequential), or the
    classifier of the network (attribute keys into the :class:`~nas.space.builder.Net`)."""

    name: str
    owner: nn.Module
    producer: int | str
    shuffle: int | None
    depthwise: int | None
    se: int | None
    consumer: int | str
    groups: int  # groups of the shuffle (1: none)

    def at(self, key: int | str) -> nn.Module:
        return self.owner[key] if isinstance(key, int) else getattr(self.owner, key)  # type: ignore[index]

    def put(self, key: int | str, module: nn.Module) -> None:
        if isinstance(key, int):
            self.owner[key] = module  # type: ignore[index]
        else:
            setattr(self.owner, key, module)

    @property
    def source(self) -> nn.Module:
        """The producing conv + BN (+ activation) block."""
        return self.at(self.producer)

    @property
    def sources(self) -> list[nn.Module]:
        return [self.source]

    @property
    def channels(self) -> int:
        return self.source[0].out_channels  # type: ignore[index]

    @property
    def unit(self) -> int:
        """Channels are kept in multiples of this (g*g with a shuffle, else 1)."""
        return self.groups * self.groups if self.groups > 1 else 1


@dataclass
class StreamGroup:
    """Channels that residual adds couple: ``producers`` (projection conv + BN blocks) are summed
    into them; ``consumers`` (1x1 conv + BN blocks) read them."""

    name: str
    producers: list[nn.Module]
    consumers: list[nn.Module]
    groups: int = 1
    unit: int = 1

    @property
    def sources(self) -> list[nn.Module]:
        return self.producers

    @property
    def channels(self) -> int:
        return self.producers[0][0].out_channels  # type: ignore[index]


def _reads_with_pointwise(module: nn.Module) -> nn.Module | None:
    """The dense 1x1 conv + BN block through which ``module`` reads its input, if it does."""
    first = module.body[0] if isinstance(module, InvertedResidual) else module
    if isinstance(first, ConvBnAct) and first[0].kernel_size == (1, 1) and first[0].groups == 1:
        return first
    return None


def _stream_groups(net: Net) -> tuple[list[StreamGroup], list[str]]:
    blocks = list(net.blocks)
    groups, dense = [], []
    i = 0
    while i < len(blocks):
        if not isinstance(blocks[i], InvertedResidual):
            i += 1
            continue
        j = i + 1
        while j < len(blocks) and isinstance(blocks[j], InvertedResidual) and blocks[j].residual:
            j += 1
        run = blocks[i:j]
        name = f"blocks.{i}" + (f"-{j - 1}" if j - 1 > i else "") + ".out"
        after = blocks[j] if j < len(blocks) else (net.head if isinstance(net.head, ConvBnAct) else None)
        readers = [_reads_with_pointwise(b) for b in run[1:]] + [_reads_with_pointwise(after) if after else None]
        if blocks[i].residual:  # the stream began before this block: its input is coupled too
            dense.append(f"{name}: continues a residual stream that an earlier block began")
        elif any(r is None for r in readers):
            dense.append(f"{name}: read by a block that is not a dense 1x1 conv (expansion-1 or ShuffleNet "
                         "block, or the classifier directly)")
        else:
            groups.append(StreamGroup(name, [b.body[-1] for b in run], [r for r in readers if r is not None]))
        i = j
    return groups, dense


Group = ChannelGroup | StreamGroup


def channel_groups(model: nn.Module, *, streams: bool = False) -> tuple[list[Group], list[str]]:
    """The prunable groups of ``model`` and the names of blocks left dense, with why; ``streams``
    adds the residual-coupled channels between blocks."""
    groups: list[Group] = []
    dense: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, Net) and isinstance(module.head, ConvBnAct):
            groups.append(ChannelGroup(f"{name}.head" if name else "head", module, "head", None, None, None,
                                       "classifier", 1))
        elif isinstance(module, InvertedResidual):
            body = module.body
            if not (isinstance(body[0], ConvBnAct) and body[0][0].kernel_size == (1, 1) and body[0][0].groups == 1):
                dense.append(f"{name}: expansion 1, its depthwise channels are the block input")
                continue
            se = 2 if isinstance(body[2], SqueezeExcite) else None
            groups.append(ChannelGroup(name, body, 0, None, 1, se, len(body) - 1, 1))
        elif isinstance(module, ShuffleV2Unit):
            groups.append(ChannelGroup(f"{name}.right", module.right, 0, None, 1, None, 2, 1))
        elif isinstance(module, (ShuffleUnit, FBNetBlock)):
            seq = module.branch if isinstance(module, ShuffleUnit) else module.body
            shuffle = seq[1]
            g = shuffle.groups if isinstance(shuffle, ChannelShuffle) else 1
            n = seq[0][0].out_channels
            if g > 1 and n % (g * g):
                dense.append(f"{name}: {n} hidden channels do not divide by groups^2 = {g * g}")
                continue
            groups.append(ChannelGroup(name, seq, 0, 1, 2, None, 3, g))
    if streams and isinstance(model, Net):
        coupled, left = _stream_groups(model)
        groups += coupled
        dense += left
    return groups, dense


def _slots(group: Group) -> tuple[int, int, int]:
    """(g, m, r): producer groups, channels per producer group, slots per consumer block."""
    g = group.groups
    m = group.channels // g
    return g, m, (m // g if g > 1 else m)


def slot_scores(group: Group, channel_scores: torch.Tensor) -> torch.Tensor:
    """Importance per prunable unit: per channel without a shuffle; with one, per slot j (summed
    over the g producer groups)."""
    g, m, _ = _slots(group)
    return channel_scores.view(g, m).sum(0) if g > 1 else channel_scores


def kept_channels(group: Group, scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Pre-shuffle indices of the ``keep`` channels to keep (``keep`` a multiple of the unit)."""
    g, m, r = _slots(group)
    if g == 1:
        return torch.sort(torch.topk(scores, keep).indices).values
    per_block = keep // (g * g)
    slots = []
    for b in range(g):  # same number of slots from each consumer block
        block = scores[b * r:(b + 1) * r]
        slots.append(b * r + torch.topk(block, per_block).indices)
    j = torch.sort(torch.cat(slots)).values
    return torch.cat([a * m + j for a in range(g)])


def _conv(old: nn.Conv2d, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None, groups: int) -> nn.Conv2d:
    weight = old.weight.detach()
    if out_idx is not None:
        weight = weight[out_idx]
    if in_idx is not None:
        weight = weight[:, in_idx]
    out_chs = weight.shape[0]
    in_chs = weight.shape[1] * groups
    new = nn.Conv2d(in_chs, out_chs, old.kernel_size, old.stride, old.padding, groups=groups,
                    bias=old.bias is not None)
    new.weight.data.copy_(weight)
    if old.bias is not None:
        new.bias.data.copy_(old.bias.detach() if out_idx is None else old.bias.detach()[out_idx])
    return new


def _bn(old: nn.BatchNorm2d, idx: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(idx), eps=old.eps, momentum=old.momentum)
    for attr in ("weight", "bias", "running_mean", "running_var"):
        getattr(new, attr).data.copy_(getattr(old, attr).detach()[idx])
    return new


def _consumer(old: nn.Conv2d, post: torch.Tensor, n: int) -> nn.Conv2d:
    """The consumer conv reading only the kept post-shuffle inputs. A grouped consumer's output
    group b reads inputs [b*n/g, (b+1)*n/g); each keeps the same count (the slot rule), but its
    own positions."""
    g = old.groups
    if g == 1:
        return _conv(old, None, post, 1)
    per, out_per = n // g, old.out_channels // g
    weight = old.weight.detach()
    parts = []
    for b in range(g):
        local = post[(post >= b * per) & (post < (b + 1) * per)] - b * per
        parts.append(weight[b * out_per:(b + 1) * out_per][:, local])
    new = nn.Conv2d(len(post), old.out_channels, old.kernel_size, old.stride, old.padding, groups=g,
                    bias=old.bias is not None)
    new.weight.data.copy_(torch.cat(parts))
    if old.bias is not None:
        new.bias.data.copy_(old.bias.detach())
    return new


def _linear_inputs(old: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    new = nn.Linear(len(keep), old.out_features, bias=old.bias is not None)
    new.weight.data.copy_(old.weight.detach()[:, keep])
    if old.bias is not None:
        new.bias.data.copy_(old.bias.detach())
    return new


def apply_keep(group: Group, pre: torch.Tensor) -> None:
    """Remove all but the ``pre`` channels (pre-shuffle indices) from the group, in place."""
    if isinstance(group, StreamGroup):
        for producer in group.producers:
            producer[0] = _conv(producer[0], pre, None, 1)
            producer[1] = _bn(producer[1], pre)
        for consumer in group.consumers:
            consumer[0] = _conv(consumer[0], None, pre, 1)
        return
    seq, n = group.owner, group.channels
    if group.shuffle is not None and isinstance(seq[group.shuffle], ChannelShuffle):
        perm = seq[group.shuffle].perm
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(n)
        post = torch.sort(inverse[pre]).values  # post-shuffle positions of the kept channels
        seq[group.shuffle] = ChannelShuffle(len(pre), group.groups)
    else:
        post = pre
    producer = group.source
    producer[0] = _conv(producer[0], pre, None, producer[0].groups)
    producer[1] = _bn(producer[1], pre)
    if group.depthwise is not None:
        dw = seq[group.depthwise]
        dw[0] = _conv(dw[0], post, None, len(post))
        dw[1] = _bn(dw[1], post)
    if group.se is not None:
        se = seq[group.se]
        se.reduce = _conv(se.reduce, None, post, 1)
        se.expand = _conv(se.expand, post, None, 1)
    consumer = group.at(group.consumer)
    if isinstance(consumer, nn.Linear):  # after global pooling: one input per channel
        group.put(group.consumer, _linear_inputs(consumer, post))
    else:
        consumer[0] = _consumer(consumer[0], post, n)


def channel_importance(groups: list[Group], criterion: str,
                       taylor_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
                       model: nn.Module | None = None) -> list[torch.Tensor]:
    """Importance of each pre-shuffle channel of each group."""
    if criterion == "l1":
        return [sum(s[0].weight.detach().abs().flatten(1).sum(1) for s in g.sources) for g in groups]
    if criterion == "bn":
        return [sum(s[1].weight.detach().abs() for s in g.sources) for g in groups]
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
    from nas.cost.costs import count_macs

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


def slimming_penalty(strength: float) -> Callable[[nn.Module], torch.Tensor]:
    """Network slimming's L1 penalty on the BatchNorm scales of prunable producers, to add to the loss."""
    def penalty(model: nn.Module) -> torch.Tensor:
        groups, _ = channel_groups(model)
        return strength * sum((s[1].weight.abs().sum() for g in groups for s in g.sources), torch.zeros(()))
    return penalty
