"""Surgery: rebuild the convs, BatchNorms and classifier of a channel group with only the kept
channels (structured pruning's fourth role, after coupling, importance and the schedule)."""
from __future__ import annotations

import torch
from torch import nn

from compress.coupling import ChannelGroup, Group, StreamGroup
from nas.space.blocks import ChannelShuffle, ConvBnAct, SqueezeExcite


def _like(old: nn.Conv2d, in_chs: int, out_chs: int, groups: int) -> nn.Conv2d:
    """A new conv with ``old``'s kernel, stride, padding and bias, and new channels and groups."""
    k, s, p = old.kernel_size, old.stride, old.padding
    assert not isinstance(p, str)  # hwnas builds convs with explicit padding
    return nn.Conv2d(in_chs, out_chs, (k[0], k[1]), (s[0], s[1]), (p[0], p[1]), groups=groups,
                     bias=old.bias is not None)


def _copy_bias(new: nn.Conv2d | nn.Linear, old: nn.Conv2d | nn.Linear, idx: torch.Tensor | None = None) -> None:
    if old.bias is not None and new.bias is not None:
        new.bias.data.copy_(old.bias.detach() if idx is None else old.bias.detach()[idx])


def _conv(old: nn.Conv2d, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None, groups: int) -> nn.Conv2d:
    weight = old.weight.detach()
    if out_idx is not None:
        weight = weight[out_idx]
    if in_idx is not None:
        weight = weight[:, in_idx]
    out_chs = weight.shape[0]
    in_chs = weight.shape[1] * groups
    new = _like(old, in_chs, out_chs, groups)
    new.weight.data.copy_(weight)
    _copy_bias(new, old, out_idx)
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
    new = _like(old, len(post), old.out_channels, g)
    new.weight.data.copy_(torch.cat(parts))
    _copy_bias(new, old)
    return new


def _linear_inputs(old: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    new = nn.Linear(len(keep), old.out_features, bias=old.bias is not None)
    new.weight.data.copy_(old.weight.detach()[:, keep])
    _copy_bias(new, old)
    return new


def _cut(block: ConvBnAct, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None, groups: int) -> None:
    """Keep ``out_idx`` outputs (conv and BN) and ``in_idx`` inputs of a conv + BN block."""
    block[0] = _conv(block.conv, out_idx, in_idx, groups)
    if out_idx is not None:
        block[1] = _bn(block.bn, out_idx)


def _post_shuffle(group: ChannelGroup, pre: torch.Tensor) -> torch.Tensor:
    """Post-shuffle positions of the kept channels; the group's shuffle is rebuilt for them."""
    shuffle = group.at(group.shuffle) if group.shuffle is not None else None
    if group.shuffle is None or not isinstance(shuffle, ChannelShuffle):
        return pre
    inverse = torch.empty_like(shuffle.perm)
    inverse[shuffle.perm] = torch.arange(group.channels)
    group.put(group.shuffle, ChannelShuffle(len(pre), group.groups))
    return torch.sort(inverse[pre]).values


def apply_keep(group: Group, pre: torch.Tensor) -> None:
    """Remove all but the ``pre`` channels (pre-shuffle indices) from the group, in place."""
    if isinstance(group, StreamGroup):
        for producer in group.producers:
            _cut(producer, pre, None, 1)
        for consumer in group.consumers:
            _cut(consumer, None, pre, 1)
        return
    n = group.channels
    post = _post_shuffle(group, pre)
    _cut(group.source, pre, None, group.source.conv.groups)
    if group.depthwise is not None:
        _cut(group.block(group.depthwise), post, None, len(post))
    if group.se is not None:
        se = group.at(group.se)
        assert isinstance(se, SqueezeExcite)
        se.reduce = _conv(se.reduce, None, post, 1)
        se.expand = _conv(se.expand, post, None, 1)
    reader = group.at(group.consumer)
    if isinstance(reader, nn.Linear):  # after global pooling: one input per channel
        group.put(group.consumer, _linear_inputs(reader, post))
    else:
        block = group.block(group.consumer)
        block[0] = _consumer(block.conv, post, n)
