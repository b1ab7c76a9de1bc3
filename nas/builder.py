"""ArchSpec -> nn.Module. The only place that tracks channels and strides between blocks.

>>> from nas.arch import parse
>>> model = build(parse("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-head_c64-fc_c10"))
>>> model(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""
from __future__ import annotations

import torch
from torch import nn

from nas.arch import ArchSpec, StageSpec
from nas.blocks import ConvBnAct, InvertedResidual, ShuffleUnit


class Net(nn.Module):
    """stem -> stages -> 1x1 head conv -> global average pool -> linear classifier."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = ConvBnAct(spec.in_chs, spec.stem_chs, spec.stem_kernel, stride=spec.stem_stride)
        blocks: list[nn.Module] = []
        in_chs = spec.stem_chs
        for stage in spec.stages:
            for i in range(stage.repeats):
                blocks.append(_block(stage, in_chs, stride=stage.stride if i == 0 else 1))
                in_chs = stage.out_chs
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBnAct(in_chs, spec.head_chs)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(spec.head_chs, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def _block(stage: StageSpec, in_chs: int, *, stride: int) -> nn.Module:
    if stage.kind == "ir":
        return InvertedResidual(in_chs, stage.out_chs, k=stage.kernel, stride=stride, exp_ratio=stage.exp_ratio)
    return ShuffleUnit(in_chs, stage.out_chs, stride=stride, groups=stage.groups)


def build(spec: ArchSpec) -> Net:
    """Build the network a spec describes, with freshly initialised weights."""
    model = Net(spec)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def fuse_bn(model: nn.Module) -> nn.Module:
    """Fold every ConvBnAct's BatchNorm into its conv, in place, for inference and export."""
    for m in model.modules():
        if isinstance(m, ConvBnAct) and isinstance(m[1], nn.BatchNorm2d):
            m[0] = torch.nn.utils.fusion.fuse_conv_bn_eval(m[0].eval(), m[1].eval())
            m[1] = nn.Identity()
    return model
