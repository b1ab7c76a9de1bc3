from __future__ import annotations

import pytest

from nas.cost.costs import count_costs
from nas.space.arch import parse


def test_macs_match_hand_formula_strided_grouped_depthwise() -> None:
    # in 1x16x16; stem 3x3 s2 -> 8x8x8; sh unit (g=2, stride 2, 8 -> 16 concat: branch 8 ch, mid 4):
    #   1x1 g2 8->4 at 8x8, dw 3x3 s2 on 4 ch -> 4x4, 1x1 g2 4->8 at 4x4; ir e3 k5 s1 16->16 at 4x4;
    #   head 1x1 16->32 at 4x4; fc 32->10.
    spec = parse("in_c1_r16-stem_k3_s2_c8-sh_r1_s2_g2_c16-ir_r1_k5_s1_e3_c16-head_c32-fc_c10")
    stem = 8 * 8 * 8 * (1 * 3 * 3)
    sh = 8 * 8 * 4 * (8 // 2) + 4 * 4 * 4 * (3 * 3) + 4 * 4 * 8 * (4 // 2)
    ir = 4 * 4 * 48 * 16 + 4 * 4 * 48 * (5 * 5) + 4 * 4 * 16 * 48
    head = 4 * 4 * 32 * 16
    fc = 32 * 10
    assert count_costs(spec).macs == stem + sh + ir + head + fc


def test_params_and_weight_memory_by_precision() -> None:
    spec = parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2")
    # convs without bias + BN (2 per channel) + fc with bias
    convs = 8 * 9 + 8 * 9 + 8 * 8 + 16 * 8
    bn = 2 * (8 + 8 + 8 + 16)
    fc = 16 * 2 + 2
    fp32 = count_costs(spec)
    assert fp32.params == convs + bn + fc
    # deployed graph: BN folded into a per-channel conv bias
    folded = convs + (8 + 8 + 8 + 16) + fc
    assert fp32.weight_mb == pytest.approx(folded * 4 / 1e6)
    assert count_costs(spec, precision="int8").weight_mb == pytest.approx(folded / 1e6)


def test_peak_activation_counts_residual_input_as_live() -> None:
    # 8x8: input 64, stem 8ch = 512, dw 512, project 512, add 512. At the add the stem output (kept
    # for the residual), the projection and the sum are live: 3 * 512 elements.
    spec = parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2")
    costs = count_costs(spec)
    assert costs.peak_activation_mb == pytest.approx(3 * 512 * 4 / 1e6)
    assert costs.memory_mb == pytest.approx(costs.weight_mb + costs.peak_activation_mb)


def test_peak_activation_without_residual() -> None:
    # stride 2 block: no residual. Largest step: head conv 1x1 8->64 at 4x4 (input 128 + output 1024)
    # versus stem (input 64 + output 512): 1152 elements.
    spec = parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s2_e1_c8-head_c64-fc_c2")
    assert count_costs(spec).peak_activation_mb == pytest.approx(1152 * 4 / 1e6)


def test_unknown_precision_is_rejected() -> None:
    with pytest.raises(ValueError, match="fp32, fp16, int8"):
        count_costs(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"), precision="int4")
