from __future__ import annotations

import pytest

from nas.space.arch import ArchError, parse

CANONICAL = [
    "in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-head_c64-fc_c10",
    "in_c3_r32-stem_k3_s2_c24-ir_r2_k5_s2_e6_c24-sh_r2_s2_g2_c48-sh_r1_s1_g3_c96-head_c256-fc_c100",
    "in_c1_r20-stem_k5_s1_c8-sh_r3_s1_g8_c64-ir_r4_k7_s2_e4_c40-head_c128-fc_c2",
    "in_c3_r224-stem_k3_s2_c24_mp1-sh_r4_s2_g3_c240_fg0-sh2_r1_s2_c116-sh2_r3_s1_c116-fc_c1000",
    "in_c3_r64-stem_k3_s2_c16_hs1-ir_r1_k3_s1_e4_c16_se1_hs1-ds_r2_k5_s2_c32_se1-head_c128_hs1-fc_c10",
    "in_c3_r32-stem_k3_s2_c16-ir_r2_k5_s2_e3_c24_se2-fir_r1_k3_s1_e4_c24_se2-head_c64-fc_c10",
    "in_c3_r32-stem_k3_s1_c16-fb_r1_k5_s1_e1_g2_c16-skip_s2_c24-fb_r1_k3_s1_e6_g1_c24-head_c64-fc_c100",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_round_trip(text: str) -> None:
    assert parse(text).format() == text


def test_parse_fields() -> None:
    spec = parse(CANONICAL[1])
    assert (spec.in_chs, spec.resolution, spec.stem_chs, spec.stem_stride) == (3, 32, 24, 2)
    assert [s.kind for s in spec.stages] == ["ir", "sh", "sh"]
    assert (spec.stages[0].kernel, spec.stages[0].exp_ratio, spec.stages[0].repeats) == (5, 6, 2)
    assert spec.stages[1].groups == 2 and spec.num_classes == 100 and spec.head_chs == 256


@pytest.mark.parametrize("text, named", [
    ("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_x4_c16-head_c64-fc_c10", "'x4'"),          # unknown token
    ("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_typo-head_c64-fc_c10", "'typo'"),          # malformed token
    ("in_c1_r28-stem_k3_s1_c16-xx_r1_k3_s1_e1_c16-head_c64-fc_c10", "'xx'"),             # unknown kind
    ("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_c16-head_c64-fc_c10", "lacks e"),             # missing token
    ("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_k5_s1_e1_c16-head_c64-fc_c10", "repeated token 'k5'"),
    ("in_c1_r28-stem_k3_s1_c16-ir_r1_k4_s1_e1_c16-head_c64-fc_c10", "kernel 4"),         # even kernel
    ("in_c1_r28-stem_k3_s3_c16-ir_r1_k3_s1_e1_c16-head_c64-fc_c10", "stride 3"),
    ("in_c1_r28-stem_k3_s1_c16-sh_r1_s1_g3_c16-head_c64-fc_c10", "groups 3"),            # 16 % 3
    ("in_c1_r28-stem_k3_s1_c16-ir_r0_k3_s1_e1_c16-head_c64-fc_c10", "r0"),
    ("in_c1_r28-stem_k3_s1_c016-ir_r1_k3_s1_e1_c16-head_c64-fc_c10", "c016"),            # non-canonical
    ("stem_k3_s1_c16-in_c1_r28-ir_r1_k3_s1_e1_c16-head_c64-fc_c10", "in-stem"),          # order
    ("in_c1_r28-stem_k3_s1_c16-head_c64-fc_c10", "at least one stage"),
    ("in_c1_r2-stem_k3_s2_c16-ir_r1_k3_s2_e1_c16-head_c64-fc_c10", "total stride 4"),
    ("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16_se0-head_c64-fc_c10", "se0 in"),           # default spelled out
    ("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16_se3-head_c64-fc_c10", "not allowed; allowed: se1 (MobileNetV3"),
    ("in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16_hs1_se1-head_c64-fc_c10", "out of order"),
    ("in_c1_r28-stem_k3_s1_c16-ir_r1_s1_k3_e1_c16-head_c64-fc_c10", "out of order"),
    ("in_c1_r28-stem_k3_s1_c16-sh2_r1_s2_c33-head_c64-fc_c10", "must be even"),
    ("in_c1_r28-stem_k3_s1_c16-fb_r1_k3_s1_e1_g3_c24-head_c64-fc_c10", "divide by groups 3"),
])
def test_rejects_and_names_the_problem(text: str, named: str) -> None:
    with pytest.raises(ArchError, match=None) as info:
        parse(text)
    assert named in str(info.value)
    assert "\n" not in str(info.value)


def test_optional_parts_and_flags() -> None:
    spec = parse(CANONICAL[3])
    assert spec.stem_pool and spec.head_chs is None and not spec.stages[0].first_grouped
    spec = parse(CANONICAL[4])
    assert spec.stem_hswish and spec.head_hswish and spec.stages[0].se and spec.stages[0].hswish
    assert spec.stages[1].kind == "ds" and spec.stages[1].se and not spec.stages[1].hswish


def test_resnet_blocks_round_trip_and_check_their_channels() -> None:
    text = "in_c3_r224-stem_k7_s2_c64_mp1-rb_r2_s1_c64-rbn_r3_s2_c256-fc_c1000"
    spec = parse(text)
    assert spec.format() == text and [s.kind for s in spec.stages] == ["rb", "rbn"]
    assert spec.stem_kernel == 7 and spec.stem_pool and spec.head_chs is None
    with pytest.raises(ArchError, match="'rbn_r1_s1_c90': channels 90 must divide by 4"):
        parse("in_c3_r32-stem_k3_s1_c16-rbn_r1_s1_c90-fc_c10")
    with pytest.raises(ArchError, match="unknown token 'k3'"):
        parse("in_c3_r32-stem_k3_s1_c16-rb_r1_k3_s1_c32-fc_c10")


def test_new_tokens_round_trip_and_are_checked() -> None:
    for text in ("in_c3_r32-stem_k3_s2_c16_hs1-ir_r1_k3_s1_e1_c24_m40_hs1-head_c64_hs1-fc_c10_h128_hs1",
                 "in_c3_r32-stem_k3_s1_c16-fir_r2_k3_s2_e4_c24_ps1-vgg_r2_s2_c32-fc_c10_p4_h64_n2",
                 "in_c3_r32-stem_k3_s2_c16_mp1_vp1-fire_r2_s2_c32-fc_c10_cv1"):
        assert parse(text).format() == text
    bad = {
        "in_c3_r32-stem_k3_s1_c20-ir_r1_k3_s1_e1_c24_m40-fc_c10":
            "40 expanded channels are 2x the input 20; canonical: e2 without m",
        "in_c3_r32-stem_k3_s1_c20-fir_r1_k3_s1_e2_c24_m50-fc_c10": "give expanded channels as e or as m, not both",
        "in_c3_r32-stem_k3_s1_c16-fire_r1_s1_c36-fc_c10": "channels 36 must divide by 8",
        "in_c3_r32-stem_k3_s1_c16-fire_r1_s1_c32-fc_c10_h64_cv1": "a conv classifier .cv1. pools globally after it",
        "in_c3_r32-stem_k3_s1_c16-fire_r1_s1_c32-fc_c10_n2": "n and hs describe hidden layers; give their width h too",
        "in_c3_r32-stem_k3_s1_c16-fire_r1_s1_c32-fc_c10_h0": "token h0 .* is the default",
    }
    for text, message in bad.items():
        with pytest.raises(ArchError, match=message):
            parse(text)
