"""Surgery keeps exactly the channels asked for, in every conv, BatchNorm and reader of a group."""
from __future__ import annotations

import torch

from compress.coupling import ChannelGroup, channel_groups
from compress.surgery import apply_keep
from nas.space.arch import parse
from nas.space.blocks import SqueezeExcite
from nas.space.builder import build


def test_the_kept_channels_of_an_se_block_and_the_head() -> None:
    model = build(parse("in_c3_r16-stem_k3_s1_c16-ir_r1_k3_s1_e4_c16_se1-head_c32-fc_c10")).eval()
    groups, _ = channel_groups(model)
    block = next(g for g in groups if isinstance(g, ChannelGroup) and g.name == "blocks.0")
    head = next(g for g in groups if isinstance(g, ChannelGroup) and g.name == "head")
    expand_weight = block.source.conv.weight.detach().clone()
    keep = torch.tensor([0, 5, 9, 63])
    apply_keep(block, keep)
    assert block.channels == 4 and torch.equal(block.source.conv.weight, expand_weight[keep])
    assert block.source.bn.num_features == 4 and block.block(1).conv.groups == 4  # the depthwise conv
    se = block.at(2)
    assert isinstance(se, SqueezeExcite) and se.reduce.in_channels == 4 and se.expand.out_channels == 4
    assert block.block(3).conv.in_channels == 4  # the projection reads the 4 kept channels
    classifier_weight = model.classifier.weight.detach().clone()
    apply_keep(head, torch.tensor([1, 2]))
    assert model.classifier.in_features == 2 and torch.equal(model.classifier.weight, classifier_weight[:, [1, 2]])
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
