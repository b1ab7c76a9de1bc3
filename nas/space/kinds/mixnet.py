"""MixNet's kind: ``mx``, the inverted residual with mixed depthwise kernels (MixConv; Tan & Le
2019, "MixConv: Mixed Depthwise Convolutional Kernels"), as timm's MixNet-S/M/L build it.

The expanded channels are split into ``n`` groups (equal, the first taking the remainder), each
with its own depthwise kernel k, k+2, ... and concatenated; the 1x1 expansion and projection may
be split into ``xg`` and ``pg`` groups the same way (timm's ``a1.1`` and ``p1.1``). ``sq``: a
squeeze-and-excite reducing to input/sq channels with a sigmoid gate (MixNet's se0.5 is sq2,
se0.25 sq4); ``sw``: swish instead of ReLU. Not offered to a search space: it is here so that
published latencies of MixNet pin the cost of mixed depthwise kernels on a device.
"""
from __future__ import annotations

import torch
from torch import nn

from nas.space.blocks import ConvBnAct, SqueezeExcite
from nas.space.kinds.base import BlockKind
from nas.space.spec import ArchError, StageSpec


def split_channels(chs: int, groups: int) -> list[int]:
    """``chs`` in ``groups`` near-equal parts, the first taking the remainder (timm's split)."""
    parts = [chs // groups] * groups
    parts[0] += chs - sum(parts)
    return parts


def _conv(in_chs: int, out_chs: int, k: int, *, stride: int, groups: int, act: str | None) -> ConvBnAct:
    block = ConvBnAct(in_chs, out_chs, k, stride=stride, groups=groups, act=False)
    if act is not None:
        block[2] = nn.SiLU(inplace=True) if act == "swish" else nn.ReLU(inplace=True)
    return block


class MixedConv(nn.Module):
    """Convs on channel splits, concatenated: ``kernels[i]`` on split i; depthwise when
    ``depthwise`` (each split its own depthwise conv), else a dense conv per split."""

    def __init__(self, in_chs: int, out_chs: int, kernels: list[int], *, stride: int, depthwise: bool,
                 act: str | None) -> None:
        super().__init__()
        ins, outs = split_channels(in_chs, len(kernels)), split_channels(out_chs, len(kernels))
        bounds = [sum(ins[:i]) for i in range(len(ins) + 1)]
        self.bounds = list(zip(bounds[:-1], bounds[1:]))
        self.convs = nn.ModuleList(_conv(i, o, k, stride=stride, groups=i if depthwise else 1, act=act)
                                   for i, o, k in zip(ins, outs, kernels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        # static slices (not torch.split): they trace and export as constant Slice ops
        return torch.cat([conv(x[:, a:b]) for conv, (a, b) in zip(self.convs, self.bounds)], dim=1)


class MixBlock(nn.Module):
    """MixNet's block: [grouped] 1x1 expansion, mixed depthwise kernels, [SE], [grouped] 1x1
    projection; residual add at stride 1 with kept channels."""

    def __init__(self, in_chs: int, out_chs: int, *, kernels: list[int], stride: int, exp_ratio: int,
                 expand_groups: int, project_groups: int, squeeze: int, swish: bool) -> None:
        super().__init__()
        act = "swish" if swish else "relu"
        mid = in_chs * exp_ratio
        layers: list[nn.Module] = []
        if exp_ratio != 1:
            layers.append(MixedConv(in_chs, mid, [1] * expand_groups, stride=1, depthwise=False, act=act))
        layers.append(MixedConv(mid, mid, kernels, stride=stride, depthwise=True, act=act))
        if squeeze:
            layers.append(SqueezeExcite(mid, squeeze=max(1, in_chs // squeeze)))
        layers.append(MixedConv(mid, out_chs, [1] * project_groups, stride=1, depthwise=False, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MixKind(BlockKind):
    name = "mx"
    summary = ("MixNet's inverted residual: expansion e (in xg 1x1 groups), n depthwise kernels k, k+2, ... on "
               "channel splits, SE to input/sq (sigmoid), projection in pg groups; sw1: swish")
    example = "mx_r2_k3_s2_e6_c40_n3_xg2_pg2_sq2_sw1"
    required = ("r", "k", "s", "e", "c")
    optional = {"n": 1, "xg": 1, "pg": 1, "sq": 0, "sw": 0}
    limits = {"n": 8, "xg": 8, "pg": 8, "sq": 64}
    flags = ("sw",)
    counts = ("sq",)
    searchable = False
    pruning_why = "mixed kernels split the hidden channels by kernel: no pruning rule yet"
    elastic_why = "mixed kernels on channel splits: no elastic form in this supernet"

    def validate(self, stage: StageSpec, in_chs: int) -> None:
        n, xg, pg = stage.get("n"), stage.get("xg"), stage.get("pg")
        mid = in_chs * stage.exp_ratio
        if n < 1 or xg < 1 or pg < 1:
            raise ArchError(f"{stage.format()!r}: n, xg and pg must be at least 1")
        if stage.kernel % 2 == 0:
            raise ArchError(f"{stage.format()!r}: kernel k{stage.kernel} must be odd (kernels k, k+2, ...)")
        if mid < n or (stage.exp_ratio != 1 and min(in_chs, mid) < xg) or min(mid, stage.out_chs) < pg:
            raise ArchError(f"{stage.format()!r}: fewer channels than groups (input {in_chs}, expanded {mid})")
        if stage.exp_ratio == 1 and xg != 1:
            raise ArchError(f"{stage.format()!r}: xg{xg} needs an expansion (e > 1)")

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        kernels = [stage.kernel + 2 * i for i in range(stage.get("n"))]
        return MixBlock(in_chs, stage.out_chs, kernels=kernels, stride=self.block_stride(stage, index),
                        exp_ratio=stage.exp_ratio, expand_groups=stage.get("xg"), project_groups=stage.get("pg"),
                        squeeze=stage.get("sq"), swish=bool(stage.get("sw")))


KINDS = (MixKind(),)
POSITION = 5  # where the table lists these kinds
