from __future__ import annotations

import copy

import pytest
import torch

from nas.space.arch import parse
from nas.space.blocks import ChannelShuffle, FBNetBlock, InvertedResidual, ShuffleUnit, ShuffleV2Unit, skip
from nas.space.builder import build, fuse_bn


@pytest.mark.parametrize("block, in_chs, out_chs, stride, expect", [
    (dict(kind="ir", k=3, exp_ratio=1), 16, 16, 1, True),
    (dict(kind="ir", k=5, exp_ratio=6), 16, 24, 2, False),
    (dict(kind="ir", k=7, exp_ratio=4), 24, 24, 1, True),
    (dict(kind="sh", groups=2), 32, 32, 1, "add"),
    (dict(kind="sh", groups=4), 16, 64, 2, "concat"),
    (dict(kind="sh", groups=8), 32, 64, 1, "plain"),
    (dict(kind="sh", groups=3), 16, 48, 2, "plain"),   # (48 - 16) % 3 != 0: no concat shortcut
])
def test_block_shapes_and_shortcuts(block: dict, in_chs: int, out_chs: int, stride: int, expect: object) -> None:
    kind = block.pop("kind")
    if kind == "ir":
        module = InvertedResidual(in_chs, out_chs, stride=stride, **block)
        assert module.residual is expect
    else:
        module = ShuffleUnit(in_chs, out_chs, stride=stride, **block)
        assert module.mode == expect
    y = module(torch.randn(2, in_chs, 12, 12))
    assert y.shape == (2, out_chs, 12 // stride, 12 // stride)


def test_channel_shuffle_interleaves_groups() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert ChannelShuffle(6, 2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert ChannelShuffle(6, 3)(x).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_network_output_and_strides() -> None:
    spec = parse("in_c3_r32-stem_k3_s2_c16-ir_r2_k5_s2_e6_c24-sh_r2_s2_g2_c48-head_c64-fc_c7")
    model = build(spec).eval()
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 7)
    assert model.head(model.blocks(model.stem(torch.randn(1, 3, 32, 32)))).shape == (1, 64, 4, 4)
    assert len(model.blocks) == 4


def test_fuse_bn_keeps_outputs() -> None:
    spec = parse("in_c1_r16-stem_k3_s1_c8-ir_r1_k3_s1_e3_c8-sh_r1_s2_g2_c16-head_c32-fc_c10")
    model = build(spec)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 16, 16))  # move BN running stats away from identity
    model.eval()
    x = torch.randn(4, 1, 16, 16)
    fused = fuse_bn(copy.deepcopy(model))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("part, in_chs, out_chs, stride", [
    ("ds_r1_k3_s2_c32", 16, 32, 2),
    ("ds_r1_k5_s1_c16_se1_hs1", 16, 16, 1),
    ("sh2_r1_s2_c48", 24, 48, 2),
    ("sh2_r1_s1_c24", 24, 24, 1),
    ("sh2_r1_s1_c48", 24, 48, 1),  # two-branch unit without its stride (baselines on small inputs)
    ("fb_r1_k3_s1_e1_g2_c16", 16, 16, 1),
    ("fb_r1_k5_s2_e6_g1_c24", 16, 24, 2),
    ("skip_s1_c16", 16, 16, 1),
    ("skip_s2_c24", 16, 24, 2),
    ("ir_r1_k3_s1_e4_c16_se1_hs1", 16, 16, 1),
])
def test_every_block_kind_builds_with_the_right_shape(part: str, in_chs: int, out_chs: int, stride: int) -> None:
    spec = parse(f"in_c3_r16-stem_k3_s1_c{in_chs}-{part}-fc_c5")
    model = build(spec).eval()
    block = model.blocks[0]
    x = torch.randn(2, in_chs, 16, 16)
    assert block(x).shape == (2, out_chs, 16 // stride, 16 // stride)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)


def test_block_internals() -> None:
    assert isinstance(skip(16, 16, stride=1), torch.nn.Identity)
    assert FBNetBlock(16, 16, k=3, stride=1, exp_ratio=1, groups=2).residual
    unit = ShuffleV2Unit(24, 24, stride=1)
    assert unit.left is None and unit.right[0][0].in_channels == 12
    fb = FBNetBlock(16, 16, k=3, stride=1, exp_ratio=3, groups=2)
    assert fb.body[0][0].groups == 2 and isinstance(fb.body[1], ChannelShuffle)
    shv1 = build(parse("in_c3_r64-stem_k3_s2_c24_mp1-sh_r2_s2_g3_c240_fg0-fc_c10"))
    assert shv1.blocks[0].branch[0][0].groups == 1 and shv1.blocks[1].branch[0][0].groups == 3
