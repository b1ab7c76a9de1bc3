"""Layer factories and blocks. Blocks know their own in/out channels and stride, nothing else:
no search space, no channel bookkeeping between blocks (that is the builder's job)."""
from __future__ import annotations

import torch
from torch import nn

from nas.arch import shuffle_mid_chs


class ConvBnAct(nn.Sequential):
    """Conv -> BatchNorm -> optional ReLU6. BN is folded into the conv at export (see fuse_bn)."""

    def __init__(self, in_chs: int, out_chs: int, k: int = 1, *, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        super().__init__(
            nn.Conv2d(in_chs, out_chs, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_chs),
            nn.ReLU6(inplace=True) if act else nn.Identity(),
        )


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (n, g*c, h, w) -> interleave the g groups."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # No shape reads, so torch.fx can trace it for the memory model.
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1 (skipped at exp_ratio 1), depthwise kxk, project 1x1."""

    def __init__(self, in_chs: int, out_chs: int, *, k: int, stride: int, exp_ratio: int) -> None:
        super().__init__()
        mid_chs = in_chs * exp_ratio
        layers: list[nn.Module] = []
        if exp_ratio != 1:
            layers.append(ConvBnAct(in_chs, mid_chs))
        layers += [ConvBnAct(mid_chs, mid_chs, k, stride=stride, groups=mid_chs),
                   ConvBnAct(mid_chs, out_chs, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class ShuffleUnit(nn.Module):
    """ShuffleNetV1 unit; shortcut rules are documented in :mod:`nas.arch`."""

    def __init__(self, in_chs: int, out_chs: int, *, stride: int, groups: int) -> None:
        super().__init__()
        self.mode = "plain"
        if stride == 1 and in_chs == out_chs:
            self.mode = "add"
        elif stride == 2 and out_chs > in_chs and (out_chs - in_chs) % groups == 0:
            self.mode = "concat"
        branch_chs = out_chs - in_chs if self.mode == "concat" else out_chs
        mid_chs = shuffle_mid_chs(out_chs)
        first_groups = groups if in_chs % groups == 0 else 1
        self.branch = nn.Sequential(
            ConvBnAct(in_chs, mid_chs, groups=first_groups),
            ChannelShuffle(groups) if groups > 1 else nn.Identity(),
            ConvBnAct(mid_chs, mid_chs, 3, stride=stride, groups=mid_chs, act=False),
            ConvBnAct(mid_chs, branch_chs, groups=groups, act=False),
        )
        self.pool = nn.AvgPool2d(3, 2, 1) if self.mode == "concat" else None
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        if self.mode == "add":
            y = x + y
        elif self.pool is not None:
            y = torch.cat([self.pool(x), y], dim=1)
        return self.act(y)
