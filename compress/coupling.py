"""Which channels are coupled: the channel groups of structured pruning (Torch-Pruning's first role;
importance, schedule and surgery live in :mod:`compress.importance`, :mod:`compress.prune` and
:mod:`compress.surgery`).

A *channel group* is a set of channels that must be removed together. hwnas prunes the hidden
channels inside blocks: a producer 1x1 conv (possibly grouped), an optional channel shuffle, a
depthwise conv, an optional squeeze-and-excite, and a consumer 1x1 conv (possibly grouped):

- MobileNetV2 inverted residuals with an expansion (expand -> dw -> [SE] -> project),
- ShuffleNetV2 units (the transformed branch's 1x1 -> dw -> 1x1),
- ShuffleNetV1 units and FBNet blocks (grouped 1x1 -> shuffle -> dw -> grouped 1x1),
- ResNet blocks: the channels between their convs (a basic block's first 3x3 output; a
  bottleneck's 1x1 and 3x3 outputs), each produced by one conv and read by the next,
- fused inverted residuals (full kxk expansion conv -> [SE] -> project).

Fire modules (one squeeze read by two expands) and VGG convs (their channels cross blocks) are
left dense and reported.

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
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas.space.blocks import (
    ChannelShuffle,
    ConvBnAct,
    FBNetBlock,
    Fire,
    FusedInvertedResidual,
    InvertedResidual,
    ResidualBlock,
    ShuffleUnit,
    ShuffleV2Unit,
    SqueezeExcite,
    VGGConv,
)
from nas.space.builder import Net


@dataclass
class ChannelGroup:
    """Channels that ``owner[producer]`` (a conv + BN block) produces and ``owner[consumer]``
    consumes: a conv + BN block inside a block (integer keys into its Sequential), or the
    classifier of the network (attribute keys into the :class:`~nas.space.builder.Net`)."""

    name: str
    owner: nn.Sequential | Net
    producer: int | str
    shuffle: int | None
    depthwise: int | None
    se: int | None
    consumer: int | str
    groups: int  # groups of the shuffle (1: none)

    def at(self, key: int | str) -> nn.Module:
        if isinstance(self.owner, nn.Sequential) and isinstance(key, int):
            return self.owner[key]
        module = getattr(self.owner, str(key))
        assert isinstance(module, nn.Module)
        return module

    def put(self, key: int | str, module: nn.Module) -> None:
        if isinstance(self.owner, nn.Sequential) and isinstance(key, int):
            self.owner[key] = module
        else:
            setattr(self.owner, str(key), module)

    def block(self, key: int | str) -> ConvBnAct:
        """The conv + BN (+ activation) block at ``key``."""
        block = self.at(key)
        assert isinstance(block, ConvBnAct)  # channel_groups only makes groups of such blocks
        return block

    @property
    def source(self) -> ConvBnAct:
        """The producing conv + BN (+ activation) block."""
        return self.block(self.producer)

    @property
    def sources(self) -> list[ConvBnAct]:
        return [self.source]

    @property
    def channels(self) -> int:
        return self.source.conv.out_channels

    @property
    def unit(self) -> int:
        """Channels are kept in multiples of this (g*g with a shuffle, else 1)."""
        return self.groups * self.groups if self.groups > 1 else 1


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


def _is_pointwise(module: nn.Module) -> bool:
    return isinstance(module, ConvBnAct) and module.conv.kernel_size == (1, 1) and module.conv.groups == 1


def _reads_with_pointwise(module: nn.Module) -> ConvBnAct | None:
    """The dense 1x1 conv + BN block through which ``module`` reads its input, if it does."""
    first = module.body[0] if isinstance(module, InvertedResidual) else module
    return first if isinstance(first, ConvBnAct) and _is_pointwise(first) else None


def _projection(block: InvertedResidual) -> ConvBnAct:
    last = block.body[-1]
    assert isinstance(last, ConvBnAct)  # an inverted residual ends in its 1x1 projection
    return last


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
            groups.append(StreamGroup(name, [_projection(b) for b in run if isinstance(b, InvertedResidual)],
                                      [r for r in readers if r is not None]))
        i = j
    return groups, dense


Group = ChannelGroup | StreamGroup


def _reads_head_directly(net: Net) -> bool:
    """Whether the classifier is one linear layer reading the globally pooled head channels."""
    spec = net.spec
    return not spec.fc_hidden and spec.pool_size == 1 and not spec.conv_classifier


def channel_groups(model: nn.Module, *, streams: bool = False) -> tuple[list[Group], list[str]]:
    """The prunable groups of ``model`` and the names of blocks left dense, with why; ``streams``
    adds the residual-coupled channels between blocks."""
    groups: list[Group] = []
    dense: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, Net) and isinstance(module.head, ConvBnAct) and not _reads_head_directly(module):
            dense.append(f"{name + '.' if name else ''}head: read by hidden linear layers or a pooled grid, not "
                         "one classifier input per channel")
        elif isinstance(module, Net) and isinstance(module.head, ConvBnAct):
            groups.append(ChannelGroup(f"{name}.head" if name else "head", module, "head", None, None, None,
                                       "classifier", 1))
        elif isinstance(module, InvertedResidual):
            body = module.body
            if not _is_pointwise(body[0]):
                dense.append(f"{name}: expansion 1, its depthwise channels are the block input")
                continue
            se = 2 if isinstance(body[2], SqueezeExcite) else None
            groups.append(ChannelGroup(name, body, 0, None, 1, se, len(body) - 1, 1))
        elif isinstance(module, FusedInvertedResidual):
            se = 1 if isinstance(module.body[1], SqueezeExcite) else None
            groups.append(ChannelGroup(name, module.body, 0, None, None, se, len(module.body) - 1, 1))
        elif isinstance(module, Fire):
            dense.append(f"{name}: fire module, its squeeze channels feed two expand convs")
        elif isinstance(module, VGGConv):
            dense.append(f"{name}: VGG conv, its channels are the next block's input (between blocks)")
        elif isinstance(module, ResidualBlock):
            # the channels between the convs of a ResNet block: each conv's output, read by the next
            for p in range(0, len(module.body) - 2, 2):
                groups.append(ChannelGroup(f"{name}.body.{p}", module.body, p, None, None, None, p + 2, 1))
        elif isinstance(module, ShuffleV2Unit):
            groups.append(ChannelGroup(f"{name}.right", module.right, 0, None, 1, None, 2, 1))
        elif isinstance(module, (ShuffleUnit, FBNetBlock)):
            seq = module.branch if isinstance(module, ShuffleUnit) else module.body
            shuffle = seq[1]
            g = shuffle.groups if isinstance(shuffle, ChannelShuffle) else 1
            group = ChannelGroup(name, seq, 0, 1, 2, None, 3, g)
            if g > 1 and group.channels % (g * g):
                dense.append(f"{name}: {group.channels} hidden channels do not divide by groups^2 = {g * g}")
                continue
            groups.append(group)
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
