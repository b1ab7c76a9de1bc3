"""Blocks: channel rounding, the shuffle permutation, conv + BN accessors, residual rules."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.space.blocks import (
    ChannelShuffle,
    ConvBnAct,
    InvertedResidual,
    ResidualBlock,
    ShuffleV2Unit,
    SqueezeExcite,
    make_divisible,
)


@pytest.mark.parametrize("value, divisor, expected", [(16 * 0.75, 8, 16), (10, 8, 16), (35, 8, 32), (4, 8, 8),
                                                     (36, 8, 40), (100, 4, 100)])
def test_make_divisible_rounds_to_the_nearest_multiple_without_losing_over_10pct(value: float, divisor: int,
                                                                                  expected: int) -> None:
    assert make_divisible(value, divisor) == expected


def test_channel_shuffle_is_the_transpose_permutation() -> None:
    # 6 channels, 2 groups: [a0 a1 a2 | b0 b1 b2] -> [a0 b0 a1 b1 a2 b2]
    assert ChannelShuffle(6, 2).perm.tolist() == [0, 3, 1, 4, 2, 5]
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert ChannelShuffle(6, 3)(x).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_conv_bn_act_accessors_name_its_layers() -> None:
    block = ConvBnAct(4, 8, 3, stride=2, groups=4)
    assert isinstance(block.conv, nn.Conv2d) and block.conv.groups == 4 and block.conv.padding == (1, 1)
    assert isinstance(block.bn, nn.BatchNorm2d) and block.bn.num_features == 8
    assert isinstance(ConvBnAct(4, 8, act=False)[2], nn.Identity)


def test_residual_only_when_shape_is_kept() -> None:
    assert InvertedResidual(16, 16, k=3, stride=1, exp_ratio=4).residual
    assert not InvertedResidual(16, 16, k=3, stride=2, exp_ratio=4).residual
    assert not InvertedResidual(16, 24, k=3, stride=1, exp_ratio=4).residual


def test_shufflenet_v2_unit_splits_its_input_in_half() -> None:
    unit = ShuffleV2Unit(32, 32, stride=1).eval()
    assert unit.half_chs == 16 and unit.left is None
    assert unit(torch.randn(1, 32, 8, 8)).shape == (1, 32, 8, 8)
    assert ShuffleV2Unit(32, 64, stride=2)(torch.randn(1, 32, 8, 8)).shape == (1, 64, 4, 4)


def test_residual_blocks_shortcut_only_where_the_shape_changes() -> None:
    basic = ResidualBlock(16, 16, stride=1, bottleneck=False).eval()
    assert isinstance(basic.shortcut, nn.Identity) and len(basic.body) == 3
    x = torch.randn(1, 16, 8, 8)
    assert basic(x).shape == (1, 16, 8, 8) and bool((basic(x) >= 0).all())  # ReLU after the add
    bottleneck = ResidualBlock(16, 64, stride=2, bottleneck=True).eval()
    assert isinstance(bottleneck.shortcut, ConvBnAct) and bottleneck.shortcut.conv.stride == (2, 2)
    convs = [m for m in bottleneck.body if isinstance(m, ConvBnAct)]
    assert [c.conv.out_channels for c in convs] == [16, 16, 64] and convs[1].conv.stride == (2, 2)
    assert bottleneck(x).shape == (1, 64, 4, 4)


def test_fused_fire_and_vgg_blocks_shapes() -> None:
    from nas.space.blocks import Fire, FusedInvertedResidual, VGGConv

    x = torch.zeros(1, 16, 15, 15)
    fused = FusedInvertedResidual(16, 16, k=3, stride=1, mid_chs=64)
    assert fused.residual and fused(x).shape == (1, 16, 15, 15)
    assert not FusedInvertedResidual(16, 16, k=3, stride=1, mid_chs=64, no_skip=True).residual
    strided = FusedInvertedResidual(16, 24, k=3, stride=2, mid_chs=64, proj_stride=True)
    assert strided.body[0].conv.stride == (1, 1) and strided.body[-1].conv.stride == (2, 2)
    assert strided(x).shape == (1, 24, 8, 8)
    fire = Fire(16, 64, pool=True)
    assert fire(x).shape == (1, 64, 7, 7)  # ceil mode: (15 - 3) / 2 + 1
    assert fire.squeeze[0].conv.out_channels == 8 and fire.expand3[0].conv.kernel_size == (3, 3)
    assert VGGConv(16, 32, pool=True)(x).shape == (1, 32, 7, 7)


def test_mnasnet_squeeze_excite_squeezes_the_block_input_with_a_sigmoid_gate() -> None:
    block = InvertedResidual(40, 40, k=5, stride=1, exp_ratio=3, se=2)
    se = next(m for m in block.modules() if isinstance(m, SqueezeExcite))
    assert (se.reduce.in_channels, se.reduce.out_channels) == (120, 10) and isinstance(se.gate, nn.Sigmoid)
    v3 = next(m for m in InvertedResidual(40, 40, k=5, stride=1, exp_ratio=3, se=1).modules()
              if isinstance(m, SqueezeExcite))
    assert v3.reduce.out_channels == 32 and isinstance(v3.gate, nn.Hardsigmoid)
    assert block(torch.zeros(1, 40, 8, 8)).shape == (1, 40, 8, 8)
