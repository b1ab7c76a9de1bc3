"""ArchSpec -> nn.Module. The only place that tracks channels and strides between blocks.

>>> from nas.space.arch import parse
>>> model = build(parse("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-head_c64-fc_c10"))
>>> model(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""
from __future__ import annotations

import torch
from torch import nn

from nas.space.arch import ArchSpec
from nas.space.blocks import ConvBnAct
from nas.space.kinds import BlockKind, block_kind


class Net(nn.Module):
    """stem [-> max pool] -> stages -> [1x1 head conv] -> average pool (global, or to p x p) ->
    [hidden linear layers] -> linear classifier; or, with a conv classifier (SqueezeNet), 1x1 conv
    + ReLU -> global average pool."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        stem: list[nn.Module] = [ConvBnAct(spec.in_chs, spec.stem_chs, spec.stem_kernel, stride=spec.stem_stride,
                                           hswish=spec.stem_hswish, padding=0 if spec.stem_valid else None)]
        if spec.stem_pool:
            stem.append(nn.MaxPool2d(3, 2, ceil_mode=True) if spec.stem_valid else nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        blocks: list[nn.Module] = []
        in_chs = spec.stem_chs
        for stage in spec.stages:
            for i in range(stage.repeats):
                blocks.append(block_kind(stage.kind).build(stage, in_chs, index=i))
                in_chs = stage.out_chs
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBnAct(in_chs, spec.head_chs, hswish=spec.head_hswish) if spec.head_chs else nn.Identity()
        features = spec.head_chs or in_chs
        self.pool = nn.AdaptiveAvgPool2d(spec.pool_size)
        hidden: list[nn.Module] = []
        width = features * spec.pool_size ** 2
        for _ in range(spec.fc_layers if spec.fc_hidden else 0):
            hidden += [nn.Linear(width, spec.fc_hidden), nn.Hardswish(inplace=True) if spec.fc_hswish
                       else nn.ReLU(inplace=True)]
            width = spec.fc_hidden
        self.hidden = nn.Sequential(*hidden) if hidden else nn.Identity()
        self.classifier: nn.Module = (nn.Sequential(nn.Conv2d(features, spec.num_classes, 1), nn.ReLU(inplace=True))
                                      if spec.conv_classifier else nn.Linear(width, spec.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        if self.spec.conv_classifier:
            return torch.flatten(self.pool(self.classifier(x)), 1)
        return self.classifier(self.hidden(torch.flatten(self.pool(x), 1)))


def block_kinds(spec: ArchSpec) -> list[BlockKind]:
    """The kind entry of each block :class:`Net` builds for ``spec``, in the order of ``Net.blocks``."""
    return [block_kind(stage.kind) for stage in spec.stages for _ in range(stage.repeats)]


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
