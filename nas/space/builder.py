"""ArchSpec -> nn.Module. The only place that tracks channels and strides between blocks.

>>> from nas.space.arch import parse
>>> model = build(parse("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-head_c64-fc_c10"))
>>> model(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""
from __future__ import annotations

import torch
from torch import nn

from nas.space.arch import ArchSpec, StageSpec
from nas.space.blocks import (
    ConvBnAct,
    FBNetBlock,
    InvertedResidual,
    ResidualBlock,
    ShuffleUnit,
    ShuffleV2Unit,
    depthwise_separable,
    skip,
)


class Net(nn.Module):
    """stem [-> max pool] -> stages -> [1x1 head conv] -> global average pool -> linear classifier."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        stem: list[nn.Module] = [ConvBnAct(spec.in_chs, spec.stem_chs, spec.stem_kernel, stride=spec.stem_stride,
                                           hswish=spec.stem_hswish)]
        if spec.stem_pool:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        blocks: list[nn.Module] = []
        in_chs = spec.stem_chs
        for stage in spec.stages:
            for i in range(stage.repeats):
                first = i == 0
                blocks.append(_block(stage, in_chs, stride=stage.stride if first else 1, first=first))
                in_chs = stage.out_chs
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBnAct(in_chs, spec.head_chs, hswish=spec.head_hswish) if spec.head_chs else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(spec.head_chs or in_chs, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def _block(stage: StageSpec, in_chs: int, *, stride: int, first: bool) -> nn.Module:
    out = stage.out_chs
    if stage.kind == "ir":
        return InvertedResidual(in_chs, out, k=stage.kernel, stride=stride, exp_ratio=stage.exp_ratio, se=stage.se,
                                hswish=stage.hswish)
    if stage.kind == "ds":
        return depthwise_separable(in_chs, out, k=stage.kernel, stride=stride, se=stage.se, hswish=stage.hswish)
    if stage.kind == "sh":
        return ShuffleUnit(in_chs, out, stride=stride, groups=stage.groups,
                           first_grouped=stage.first_grouped or not first)
    if stage.kind == "sh2":
        return ShuffleV2Unit(in_chs, out, stride=stride)
    if stage.kind == "fb":
        return FBNetBlock(in_chs, out, k=stage.kernel, stride=stride, exp_ratio=stage.exp_ratio, groups=stage.groups)
    if stage.kind == "skip":
        return skip(in_chs, out, stride=stride)
    if stage.kind in ("rb", "rbn"):
        return ResidualBlock(in_chs, out, stride=stride, bottleneck=stage.kind == "rbn")
    raise AssertionError(f"builder has no block for kind {stage.kind!r}")  # parse() admits no other kind


def build(spec: ArchSpec) -> Net:
    """Build the network a spec describes, with freshly initialised weights."""
    model = Net(spec)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def fuse_bn(model: nn.Module) -> nn.Module:
    """Fold every ConvBnAct's BatchNorm into its conv, in place, for inference and export."""
    for m in model.modules():
        if isinstance(m, ConvBnAct) and isinstance(m[1], nn.BatchNorm2d):
            m[0] = torch.nn.utils.fusion.fuse_conv_bn_eval(m.conv.eval(), m[1].eval())
            m[1] = nn.Identity()
    return model
