"""Layer factories and blocks. Blocks know their own in/out channels and stride, nothing else:
no search space, no channel bookkeeping between blocks (that is the builder's job)."""
from __future__ import annotations

import torch
from torch import nn



def shuffle_mid_chs(out_chs: int) -> int:
    """Bottleneck width of a ShuffleNetV1 unit: a quarter of the unit's output, as in the paper."""
    return out_chs // 4


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` without losing more than 10% (as timm does)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def activation(hswish: bool) -> nn.Module:
    return nn.Hardswish(inplace=True) if hswish else nn.ReLU6(inplace=True)


class ConvBnAct(nn.Sequential):
    """Conv -> BatchNorm -> activation (ReLU6, hard-swish or none). BN folds into the conv at export."""

    def __init__(self, in_chs: int, out_chs: int, k: int = 1, *, stride: int = 1, groups: int = 1,
                 act: bool = True, hswish: bool = False, padding: int | None = None) -> None:
        super().__init__(
            nn.Conv2d(in_chs, out_chs, k, stride, k // 2 if padding is None else padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_chs),
            activation(hswish) if act else nn.Identity(),
        )

    @property
    def conv(self) -> nn.Conv2d:
        conv = self[0]
        assert isinstance(conv, nn.Conv2d)  # pruning swaps it only for another Conv2d
        return conv

    @property
    def bn(self) -> nn.BatchNorm2d:
        bn = self[1]
        assert isinstance(bn, nn.BatchNorm2d)
        return bn


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite: pooled 1x1 reduce, ReLU, 1x1 expand, gate. MobileNetV3's (``squeeze``
    0): reduce to chs/4 rounded to a multiple of 8, hard-sigmoid gate; MnasNet's and EfficientNet's:
    reduce to ``squeeze`` (a quarter of the block's input), sigmoid gate."""

    def __init__(self, chs: int, squeeze: int = 0) -> None:
        super().__init__()
        reduced = squeeze or make_divisible(chs / 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(chs, reduced, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(reduced, chs, 1)
        self.gate: nn.Module = nn.Sigmoid() if squeeze else nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def squeeze_excite(kind: int, chs: int, block_in_chs: int) -> SqueezeExcite:
    """The SE of a block's ``se`` token: 1, MobileNetV3's; 2, MnasNet's (a quarter of the input)."""
    return SqueezeExcite(chs, squeeze=max(1, block_in_chs // 4) if kind == 2 else 0)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (n, g*c, h, w) -> interleave the g groups.

    Done as one gather with a constant permutation: exported, it is a single ONNX Gather, where the
    reshape-transpose form becomes a dozen shape ops under a dynamic batch axis.
    """

    perm: torch.Tensor

    def __init__(self, chs: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.register_buffer("perm", torch.arange(chs).view(groups, chs // groups).t().flatten(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.perm)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1 to ``mid_chs`` (default in*exp_ratio; skipped when that is the
    input), depthwise kxk, [SE], project 1x1. Residual add when stride is 1 and channels are kept."""

    def __init__(self, in_chs: int, out_chs: int, *, k: int, stride: int, exp_ratio: int = 1, se: int = 0,
                 hswish: bool = False, mid_chs: int = 0) -> None:
        super().__init__()
        mid_chs = mid_chs or in_chs * exp_ratio
        layers: list[nn.Module] = []
        if mid_chs != in_chs:
            layers.append(ConvBnAct(in_chs, mid_chs, hswish=hswish))
        layers.append(ConvBnAct(mid_chs, mid_chs, k, stride=stride, groups=mid_chs, hswish=hswish))
        if se:
            layers.append(squeeze_excite(se, mid_chs, in_chs))
        layers.append(ConvBnAct(mid_chs, out_chs, act=False))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class FusedInvertedResidual(nn.Module):
    """EfficientNet-EdgeTPU's fused inverted residual: a full kxk conv from the input to ``mid_chs``
    carrying the stride (where the inverted residual has a 1x1 expansion and a depthwise conv: the
    form accelerators that run depthwise convs poorly prefer), [SE], project 1x1. Residual add as
    :class:`InvertedResidual` unless ``no_skip``. ``proj_stride``: the projection carries the stride
    (EfficientNet-EdgeTPU's builder), so the kxk conv runs at the input's resolution."""

    def __init__(self, in_chs: int, out_chs: int, *, k: int, stride: int, mid_chs: int, se: int = 0,
                 hswish: bool = False, proj_stride: bool = False, no_skip: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBnAct(in_chs, mid_chs, k, stride=1 if proj_stride else stride, hswish=hswish)]
        if se:
            layers.append(squeeze_excite(se, mid_chs, in_chs))
        layers.append(ConvBnAct(mid_chs, out_chs, stride=stride if proj_stride else 1, act=False))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_chs == out_chs and not no_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class VGGConv(nn.Sequential):
    """VGG's layer: 3x3 conv (BN folded at export), ReLU, and a 2x2 max pool when ``pool``."""

    def __init__(self, in_chs: int, out_chs: int, *, pool: bool) -> None:
        layers: list[nn.Module] = [ConvBnAct(in_chs, out_chs, 3, act=False), nn.ReLU(inplace=True)]
        if pool:
            layers.append(nn.MaxPool2d(2, 2))
        super().__init__(*layers)


class Fire(nn.Module):
    """SqueezeNet's fire module: [3x3 stride-2 max pool, ceil mode, when ``pool``], 1x1 squeeze to
    out/8 + ReLU, then a 1x1 and a 3x3 expand of out/2 each + ReLU, concatenated."""

    def __init__(self, in_chs: int, out_chs: int, *, pool: bool) -> None:
        super().__init__()
        squeeze, half = out_chs // 8, out_chs // 2
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True) if pool else nn.Identity()
        self.squeeze = nn.Sequential(ConvBnAct(in_chs, squeeze, act=False), nn.ReLU(inplace=True))
        self.expand1 = nn.Sequential(ConvBnAct(squeeze, half, act=False), nn.ReLU(inplace=True))
        self.expand3 = nn.Sequential(ConvBnAct(squeeze, half, 3, act=False), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(self.pool(x))
        return torch.cat([self.expand1(s), self.expand3(s)], dim=1)


def depthwise_separable(in_chs: int, out_chs: int, *, k: int, stride: int, se: int = 0,
                        hswish: bool = False) -> nn.Sequential:
    """MobileNetV1 block: depthwise kxk conv-BN-act, [SE], pointwise 1x1 conv-BN-act."""
    layers: list[nn.Module] = [ConvBnAct(in_chs, in_chs, k, stride=stride, groups=in_chs, hswish=hswish)]
    if se:
        layers.append(squeeze_excite(se, in_chs, in_chs))
    layers.append(ConvBnAct(in_chs, out_chs, hswish=hswish))
    return nn.Sequential(*layers)


class ShuffleUnit(nn.Module):
    """ShuffleNetV1 unit: 1x1 group conv to out/4 (grouped when ``first_grouped`` and the input
    divides by g), shuffle, 3x3 depthwise, 1x1 group conv. Residual add at stride 1 with kept
    channels; at stride 2, concat with a 3x3 average-pooled input when ``(out - in) % g == 0``
    (the paper's downsampling unit); otherwise no shortcut."""

    def __init__(self, in_chs: int, out_chs: int, *, stride: int, groups: int, first_grouped: bool = True) -> None:
        super().__init__()
        self.mode = "plain"
        if stride == 1 and in_chs == out_chs:
            self.mode = "add"
        elif stride == 2 and out_chs > in_chs and (out_chs - in_chs) % groups == 0:
            self.mode = "concat"
        branch_chs = out_chs - in_chs if self.mode == "concat" else out_chs
        mid_chs = shuffle_mid_chs(out_chs)
        first_groups = groups if first_grouped and in_chs % groups == 0 else 1
        self.branch = nn.Sequential(
            ConvBnAct(in_chs, mid_chs, groups=first_groups),
            ChannelShuffle(mid_chs, groups) if groups > 1 else nn.Identity(),
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


class ShuffleV2Unit(nn.Module):
    """ShuffleNetV2 unit. Channels kept at stride 1: split channels in half, transform one half
    (1x1, 3x3 dw, 1x1), concat, shuffle. Otherwise (stride 2, or new channel count): both branches
    see the whole input (left: 3x3 dw, 1x1; right: 1x1, 3x3 dw, 1x1), each makes out/2 channels;
    concat, shuffle."""

    def __init__(self, in_chs: int, out_chs: int, *, stride: int) -> None:
        super().__init__()
        half = out_chs // 2
        self.half_chs = half
        two_branch = stride == 2 or in_chs != out_chs
        branch_in = in_chs if two_branch else half
        self.right = nn.Sequential(
            ConvBnAct(branch_in, half),
            ConvBnAct(half, half, 3, stride=stride, groups=half, act=False),
            ConvBnAct(half, half),
        )
        self.left = nn.Sequential(
            ConvBnAct(in_chs, in_chs, 3, stride=stride, groups=in_chs, act=False),
            ConvBnAct(in_chs, half),
        ) if two_branch else None
        self.shuffle = ChannelShuffle(out_chs, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.left is None:
            # Static slices (not chunk): they export as constant Slice ops, no shape arithmetic.
            y = torch.cat([x[:, :self.half_chs], self.right(x[:, self.half_chs:])], dim=1)
        else:
            y = torch.cat([self.left(x), self.right(x)], dim=1)
        return self.shuffle(y)


class FBNetBlock(nn.Module):
    """FBNet block as HW-NAS-Bench builds it: 1x1 conv (groups g) to in*e (present even at e=1),
    BN, ReLU; shuffle when g > 1; kxk depthwise (stride), BN, ReLU; 1x1 conv (groups g) to out, BN;
    residual add when channels are kept at stride 1."""

    def __init__(self, in_chs: int, out_chs: int, *, k: int, stride: int, exp_ratio: int, groups: int) -> None:
        super().__init__()
        mid_chs = in_chs * exp_ratio
        self.body = nn.Sequential(
            ConvBnAct(in_chs, mid_chs, groups=groups),
            ChannelShuffle(mid_chs, groups) if groups > 1 else nn.Identity(),
            ConvBnAct(mid_chs, mid_chs, k, stride=stride, groups=mid_chs),
            ConvBnAct(mid_chs, out_chs, groups=groups, act=False),
        )
        self.residual = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def skip(in_chs: int, out_chs: int, *, stride: int) -> nn.Module:
    """FBNet's skip op: identity where the shape is kept, else a strided 1x1 conv + BN."""
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    return ConvBnAct(in_chs, out_chs, 1, stride=stride, act=False)


def _shortcut(in_chs: int, out_chs: int, stride: int) -> nn.Module:
    """Identity where the shape is kept, else a strided 1x1 conv + BN (ResNet's projection shortcut)."""
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    return ConvBnAct(in_chs, out_chs, 1, stride=stride, act=False)


class ResidualBlock(nn.Module):
    """ResNet block: ``body`` (the basic block's two 3x3 convs, or the bottleneck's 1x1, 3x3, 1x1
    to out/4, out/4, out), plus the shortcut, then ReLU. The stride sits on the first 3x3 conv."""

    def __init__(self, in_chs: int, out_chs: int, *, stride: int, bottleneck: bool) -> None:
        super().__init__()
        if bottleneck:
            mid = out_chs // 4
            self.body = nn.Sequential(ConvBnAct(in_chs, mid, 1, act=False), nn.ReLU(inplace=True),
                                      ConvBnAct(mid, mid, 3, stride=stride, act=False), nn.ReLU(inplace=True),
                                      ConvBnAct(mid, out_chs, 1, act=False))
        else:
            self.body = nn.Sequential(ConvBnAct(in_chs, out_chs, 3, stride=stride, act=False), nn.ReLU(inplace=True),
                                      ConvBnAct(out_chs, out_chs, 3, act=False))
        self.shortcut = _shortcut(in_chs, out_chs, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))

