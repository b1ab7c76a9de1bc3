"""Which channels are coupled: the channel groups of structured pruning (Torch-Pruning's first role;
importance, schedule and surgery live in :mod:`compress.importance`, :mod:`compress.prune` and
:mod:`compress.surgery`).

A *channel group* is a set of channels that must be removed together. Inside a block, which
channels are coupled is the block kind's own rule (``BlockKind.coupling`` in
:mod:`nas.space.kinds`: e.g. an inverted residual's expand -> depthwise -> [SE] -> project, a
ShuffleNet unit's grouped 1x1 -> shuffle -> depthwise -> grouped 1x1); a kind without a rule says
why in ``pruning_why``, and its blocks are reported dense with that reason, never skipped silently.

It also prunes the network's head: the 1x1 head conv's output channels, which pass through global
average pooling into the classifier (the consumer, a linear layer). In a MobileNet-style network
the head holds a large share of the parameters.

And it prunes the channels between blocks where residual adds couple them (a :class:`StreamGroup`):
a run of blocks that add their output into one stream (a kind's ``stream_output``: an inverted
residual that changes channels or stride, then the residual ones after it) sums every block's
projection into one stream, so the same channels go from every projection, from the 1x1 conv
through which every residual block of the run reads the stream, and from the one that reads it
after the run (the next block's, or the head conv). A run whose stream feeds anything else (a
depthwise conv of an expansion-1 block, a ShuffleNet unit, the classifier directly) is left dense
and reported. Grouped convs with a shuffle between them stay exact: with ``n = g * g * r``
hidden channels, channel (group a, slot j) lands after the shuffle in consumer group ``j // r``;
keeping the same slots in every producer group, the same number in each block of ``r`` slots,
keeps every surviving weight where it was. Hidden sizes that do not divide by ``g * g`` are left
dense (reported). Stage-level channels (the residual stream) are not pruned.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas.space.blocks import ConvBnAct
from nas.space.builder import Net, block_kinds
from nas.space.kinds import ChannelGroup, is_pointwise

__all__ = ["ChannelGroup", "Group", "StreamGroup", "channel_groups", "kept_channels", "slot_scores"]


@dataclass
class StreamGroup:
    """Channels that residual adds couple: ``producers`` (projection conv + BN blocks) are summed
    into them; ``consumers`` (1x1 conv + BN blocks) read them."""

    name: str
    producers: list[ConvBnAct]
    consumers: list[ConvBnAct]
    groups: int = 1
    unit: int = 1

    @property
    def sources(self) -> list[ConvBnAct]:
        return self.producers

    @property
    def channels(self) -> int:
        return self.producers[0].conv.out_channels


def _stream_groups(net: Net) -> tuple[list[StreamGroup], list[str]]:
    blocks = list(net.blocks)
    kinds = block_kinds(net.spec)
    head = net.head if isinstance(net.head, ConvBnAct) and is_pointwise(net.head) else None

    def joins(i: int) -> bool:
        return kinds[i].stream_output(blocks[i]) is not None

    groups, dense = [], []
    i = 0
    while i < len(blocks):
        if not joins(i):
            i += 1
            continue
        j = i + 1
        while j < len(blocks) and joins(j) and kinds[j].residual(blocks[j]):
            j += 1
        name = f"blocks.{i}" + (f"-{j - 1}" if j - 1 > i else "") + ".out"
        readers = [kinds[r].pointwise_input(blocks[r]) for r in range(i + 1, j)]
        readers.append(kinds[j].pointwise_input(blocks[j]) if j < len(blocks) else head)
        if kinds[i].residual(blocks[i]):  # the stream began before this block: its input is coupled too
            dense.append(f"{name}: continues a residual stream that an earlier block began")
        elif any(r is None for r in readers):
            dense.append(f"{name}: read by a block that is not a dense 1x1 conv (expansion-1 or ShuffleNet "
                         "block, or the classifier directly)")
        else:
            producers = [kinds[r].stream_output(blocks[r]) for r in range(i, j)]
            groups.append(StreamGroup(name, [p for p in producers if p is not None],
                                      [r for r in readers if r is not None]))
        i = j
    return groups, dense


Group = ChannelGroup | StreamGroup


def _reads_head_directly(net: Net) -> bool:
    """Whether the classifier is one linear layer reading the globally pooled head channels."""
    spec = net.spec
    return not spec.fc_hidden and spec.pool_size == 1 and not spec.conv_classifier


def channel_groups(model: nn.Module, *, streams: bool = False) -> tuple[list[Group], list[str]]:
    """The prunable groups of ``model`` (every :class:`Net` in it) and the names of blocks left
    dense, with why; ``streams`` adds the residual-coupled channels between blocks."""
    groups: list[Group] = []
    dense: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, Net):
            continue
        prefix = f"{name}." if name else ""
        if isinstance(module.head, ConvBnAct) and not _reads_head_directly(module):
            dense.append(f"{prefix}head: read by hidden linear layers or a pooled grid, not "
                         "one classifier input per channel")
        elif isinstance(module.head, ConvBnAct):
            groups.append(ChannelGroup(f"{prefix}head", module, "head", None, None, None, "classifier", 1))
        for i, (block, kind) in enumerate(zip(module.blocks, block_kinds(module.spec), strict=True)):
            inner, left = kind.coupling(block, f"{prefix}blocks.{i}")
            groups += inner
            dense += left
        if streams:
            coupled, left = _stream_groups(module)
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
