"""Coupled channels: which groups each block type makes, which stay dense and why, and the slot
rule that keeps grouped convs with a shuffle exact."""
from __future__ import annotations

import torch

from compress.coupling import ChannelGroup, StreamGroup, channel_groups, kept_channels, slot_scores
from nas.space.arch import parse
from nas.space.builder import build


def test_groups_of_each_block_type_and_the_dense_ones() -> None:
    model = build(parse("in_c3_r16-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-ir_r1_k3_s2_e4_c24-sh_r1_s1_g2_c24-"
                        "sh2_r1_s1_c24-head_c64-fc_c10"))
    groups, dense = channel_groups(model)
    by_name = {g.name: g for g in groups}
    assert set(by_name) == {"head", "blocks.1", "blocks.3.right"}
    assert by_name["blocks.1"].channels == 64 and by_name["blocks.1"].unit == 1  # 16 x expansion 4
    assert by_name["blocks.3.right"].channels == 12 and by_name["head"].channels == 64
    assert dense == ["blocks.0: expansion 1, its depthwise channels are the block input",
                     "blocks.2: 6 hidden channels do not divide by groups^2 = 4"]
    streams, _ = channel_groups(build(parse("in_c3_r16-stem_k3_s1_c16-ir_r1_k3_s2_e4_c24-ir_r2_k3_s1_e4_c24-"
                                            "head_c64-fc_c10")), streams=True)
    (stream,) = [g for g in streams if isinstance(g, StreamGroup)]
    assert stream.name == "blocks.0-2.out" and len(stream.producers) == 3 and len(stream.consumers) == 3


def test_the_slot_rule_keeps_the_same_slots_in_every_producer_group() -> None:
    model = build(parse("in_c3_r16-stem_k3_s1_c32-sh_r1_s1_g2_c32-fc_c10"))
    (group,) = [g for g in channel_groups(model)[0] if isinstance(g, ChannelGroup)]
    assert group.groups == 2 and group.channels == 8  # bottleneck 32/4: g = 2 groups of m = 4, r = 2 slots per block
    scores = torch.tensor([1.0, 9.0, 3.0, 2.0, 5.0, 1.0, 1.0, 8.0])  # producer group 0 | producer group 1
    slots = slot_scores(group, scores)
    assert slots.tolist() == [6.0, 10.0, 4.0, 10.0]  # summed over the two producer groups
    # keep 4 = g*g channels: one slot from each consumer block (slots 0-1 and 2-3), same in both groups
    assert kept_channels(group, slots, 4).tolist() == [1, 3, 5, 7]
