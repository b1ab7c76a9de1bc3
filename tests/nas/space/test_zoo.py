"""Reference architectures against the papers' MACs and parameters (ImageNet settings)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas.core.errors import UserError
from nas.cost.costs import count_costs
from nas.cost.layers import layer_table
from nas.hardware.hwnasbench import block_keys, load_table, network_figure
from nas.space.arch import parse
from nas.space.builder import build
from nas.space.zoo import (
    FAMILIES,
    FBNET_OPS,
    efficientnet_edgetpu,
    efficientnet_lite,
    fbnet,
    googlenet,
    mnasnet_a1,
    mnasnet_b1,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    shufflenet_v1,
    shufflenet_v2,
    squeezenet,
    vgg,
    zoo_entries,
)

SHARED_TABLE = Path(__file__).resolve().parents[4] / "shared" / "data" / "hwnasbench_fbnet_blocks.json"

PAPERS = [  # (spec, published MACs, published parameters)
    (mobilenet_v1(width=1.0, resolution=224), 569e6, 4.2e6),
    (mobilenet_v1(width=0.5, resolution=160), 76e6, 1.32e6),
    # The MobileNetV2 paper rounds the authors' released model's 3.47M parameters down to 3.4M;
    # 3.47M is the figure an exact reproduction can meet (see test_mobilenet_v2_exact_counts).
    (mobilenet_v2(width=1.0, resolution=224), 300e6, 3.47e6),
    (mobilenet_v2(width=0.75, resolution=224), 209e6, 2.61e6),
    (shufflenet_v2(width=1.0), 146e6, 2.28e6),
    # He et al. 2016, Table 1 (1.8, 3.6, 3.8 and 7.6 GFLOPs, which are multiply-adds), parameters as
    # released (torchvision); ResNet-50/101 as v1.5 (the stride on the 3x3 conv) count 4.1 and 7.8.
    (resnet18(), 1.8e9, 11.69e6),
    (resnet34(), 3.6e9, 21.80e6),
    (resnet50(), 4.09e9, 25.56e6),
    (resnet101(), 7.80e9, 44.55e6),
    # Tan et al. 2019 (MnasNet-B1, the variant without squeeze-and-excite): 4.4M parameters, 315M MACs
    (mnasnet_b1(), 315e6, 4.4e6),
    # MnasNet-A1 (Tan et al. 2019, Table 1): 312M MACs, 3.9M parameters
    (mnasnet_a1(), 312e6, 3.9e6),
    (resnet152(), 11.5e9, 60.19e6),  # torchvision: 11.5 GMACs (v1.5), 60,192,808 parameters
    # Simonyan & Zisserman 2015 as torchvision builds them: 7.61/11.31/15.47/19.63 G multiply-adds
    (vgg(11), 7.61e9, 132.86e6), (vgg(13), 11.31e9, 133.05e6), (vgg(16), 15.47e9, 138.36e6),
    (vgg(19), 19.63e9, 143.67e6),
    # Iandola et al. 2016 / torchvision: 0.82 and 0.35 G multiply-adds, 1.25M and 1.24M parameters
    (squeezenet("1.0"), 0.819e9, 1.248e6), (squeezenet("1.1"), 0.349e9, 1.235e6),
    # Howard et al. 2019, Table 3: 219M / 5.4M (large), 56M / 2.5M (small)
    (mobilenet_v3("large"), 219e6, 5.4e6), (mobilenet_v3("small"), 56e6, 2.5e6),
    # EfficientNet-EdgeTPU: multiply-adds from Vitis AI's model zoo (4.72/7.34/19.36 GFLOPs, 2 per
    # multiply-add), parameters as timm's ports of the TF checkpoints list them (5.44/6.90/10.59M)
    (efficientnet_edgetpu("S"), 2.36e9, 5.44e6), (efficientnet_edgetpu("M"), 3.67e9, 6.90e6),
    (efficientnet_edgetpu("L"), 9.68e9, 10.59e6),
    # EfficientNet-Lite0: Vitis AI's model zoo counts 0.77 GFLOPs; parameters from the TF README (4.7M)
    (efficientnet_lite(0), 0.385e9, 4.7e6),
    # GoogLeNet without auxiliary heads, as torchvision publishes it: 1.5 G MACs, 6.6 M parameters
    (googlenet(), 1.5e9, 6.6e6),
]


@pytest.mark.parametrize("spec, macs, params", PAPERS, ids=lambda v: v.format()[:28] if hasattr(v, "format") else "")
def test_published_macs_and_parameters_within_2_percent(spec, macs: float, params: float) -> None:
    costs = count_costs(spec)
    assert costs.macs == pytest.approx(macs, rel=0.02)
    assert costs.params == pytest.approx(params, rel=0.02)


def test_shufflenet_v1_g3_between_the_papers_two_figures() -> None:
    costs = count_costs(shufflenet_v1(groups=3))
    assert 137e6 * 0.98 <= costs.macs <= 140e6 * 1.02
    assert costs.params == pytest.approx(1.87e6, rel=0.02)


def test_mobilenet_v2_exact_counts() -> None:
    model = build(mobilenet_v2())
    total = sum(p.numel() for p in model.parameters())
    bn = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert total == 3_504_872  # torchvision's MobileNetV2, BN included (our parameter convention)
    assert total - bn == 3_470_760  # the authors' released model: 3.47M


def test_resnet_and_mnasnet_exact_counts() -> None:
    """torchvision's resnet18/34/50/101 and mnasnet1_0 / mnasnet0_5, parameter for parameter."""
    expected = {resnet18(): 11_689_512, resnet34(): 21_797_672, resnet50(): 25_557_032, resnet101(): 44_549_160,
                mnasnet_b1(): 4_383_312, mnasnet_b1(width=0.5): 2_218_512}
    assert {spec.format(): count_costs(spec).params for spec in expected} == {
        spec.format(): n for spec, n in expected.items()}
    assert resnet50().format() == ("in_c3_r224-stem_k7_s2_c64_mp1-rbn_r3_s1_c256-rbn_r4_s2_c512-rbn_r6_s2_c1024-"
                                   "rbn_r3_s2_c2048-fc_c1000")


def test_mobilenet_v2_head_stays_1280_below_width_one() -> None:
    assert mobilenet_v2(width=0.5).head_chs == 1280 and mobilenet_v2(width=1.4).head_chs == 1792


@pytest.mark.parametrize("entry", zoo_entries(), ids=lambda e: e.name)
def test_every_zoo_entry_round_trips_and_runs(entry) -> None:
    assert parse(entry.spec.format()) == entry.spec
    model = build(parse(entry.spec.format())).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, entry.spec.in_chs, 64, 64))
    assert out.shape == (1, entry.spec.num_classes)


def test_fbnet_block_structure() -> None:
    spec = fbnet([FBNET_OPS.index("k3_e1")] * 22)
    assert len(spec.stages) == 22 and spec.stem_stride == 2 and spec.head_chs == 1984
    model = build(spec)
    # the 1x1 expansion conv exists even at e = 1
    first = model.blocks[0].body[0][0]
    assert isinstance(first, torch.nn.Conv2d) and first.kernel_size == (1, 1) and first.out_channels == 16
    cifar = fbnet([FBNET_OPS.index("k5_e1_g2")] * 22, setting="cifar")
    assert cifar.resolution == 32 and cifar.num_classes == 100 and cifar.stages[0].groups == 2
    with pytest.raises(UserError, match="needs 22 op indices"):
        fbnet([0] * 21)


def test_hwnasbench_keys_follow_the_tables_naming() -> None:
    keys = block_keys(fbnet([FBNET_OPS.index("skip")] * 22))
    assert keys[0] == "ConvNorm_H224_W224_Cin3_Cout16_kernel3_stride2_group1"
    assert keys[1] == "Skip_H112_W112_Cin16_Cout16_stride1"
    assert keys[2] == "Skip_H112_W112_Cin16_Cout24_stride2"
    assert keys[-3:] == ["ConvNorm_H7_W7_Cin352_Cout1984_kernel1_stride1_group1",
                         "AvgP_H7_W7_Cin1984_Cout1984_kernel7_stride1", "FC_Cin1984_Cout1000"]
    with pytest.raises(UserError, match="not in the FBNet space"):
        block_keys(mobilenet_v2())


@pytest.mark.skipif(not SHARED_TABLE.exists(), reason="../shared/data/hwnasbench_fbnet_blocks.json not present")
def test_hwnasbench_all_k3_e1_imagenet_sums() -> None:
    table = load_table(SHARED_TABLE)
    spec = fbnet([FBNET_OPS.index("k3_e1")] * 22)
    assert network_figure(spec, table, "edgegpu_latency") == pytest.approx(16.43, abs=0.005)
    assert network_figure(spec, table, "raspi4_latency") == pytest.approx(57.66, abs=0.005)
    with pytest.raises(UserError, match="no edgegpu_latency figure"):
        network_figure(fbnet([0] * 22, resolution=192), table, "edgegpu_latency")


def test_adapt_to_input_keeps_strides_while_maps_stay_wide_enough() -> None:
    from nas.space.zoo import adapt_to_input

    spec = adapt_to_input(mobilenet_v2(width=0.5), resolution=28, in_chs=1, classes=10, min_feature=3)
    # 28 -> 14 (stem) -> 7 -> 4 (first two stride-2 stages), the last two stay at stride 1
    assert (spec.stem_stride, [s.stride for s in spec.stages]) == (2, [1, 2, 2, 1, 1, 1, 1])
    assert spec.in_chs == 1 and spec.num_classes == 10 and spec.resolution == 28
    assert [s.out_chs for s in spec.stages] == [s.out_chs for s in mobilenet_v2(width=0.5).stages]
    shv2 = adapt_to_input(shufflenet_v2(width=0.5), resolution=16, in_chs=3, classes=5, min_feature=3)
    assert shv2.stem_stride == 2 and shv2.stem_pool and [s.stride for s in shv2.stages][::2] == [1, 1, 1]
    assert build(shv2)(torch.zeros(1, 3, 16, 16)).shape == (1, 5)


# tensorflow/tpu's EfficientNet-Lite README: (parameters, multiply-adds) of lite0..4
LITE_README = {0: (4.7e6, 407e6), 1: (5.4e6, 631e6), 2: (6.1e6, 899e6), 3: (8.2e6, 1.44e9), 4: (13.0e6, 2.64e9)}


@pytest.mark.parametrize("variant", list(LITE_README))
def test_efficientnet_lite_parameters_within_2_percent_and_the_readme_macs_gap(variant: int) -> None:
    """Parameters match the README within 2%. Its multiply-adds do not: they are 3-6% above ours
    for every variant, also for lite0, whose 385M we count exactly as Vitis AI's model zoo does
    (0.77 GFLOPs): the README counts something beyond the convs and the classifier."""
    costs = count_costs(efficientnet_lite(variant))
    params, macs = LITE_README[variant]
    assert costs.params == pytest.approx(params, rel=0.02)
    assert 0.94 <= costs.macs / macs <= 0.97


def test_new_families_exact_counts_and_structure() -> None:
    """torchvision's MobileNetV3 parameter for parameter; vgg16_bn less its conv biases (a conv
    before BatchNorm needs none); EdgeTPU-S's fused blocks put the stride on the projection."""
    assert count_costs(mobilenet_v3("large")).params == 5_483_032
    assert count_costs(mobilenet_v3("small")).params == 2_542_856
    assert count_costs(vgg(16)).params == 138_365_992 - 4_224
    assert efficientnet_edgetpu("S").format() == (
        "in_c3_r224-stem_k3_s2_c32-fir_r1_k3_s1_e3_c24_ps1_ns1-fir_r2_k3_s2_e8_c32_ps1-fir_r4_k3_s2_e8_c48_ps1-"
        "ir_r5_k5_s2_e8_c96-ir_r4_k5_s1_e8_c144-ir_r2_k5_s2_e8_c192-head_c1280-fc_c1000")
    assert "ir_r1_k3_s1_e1_c80_m200_hs1" in mobilenet_v3("large").format()
    assert squeezenet("1.1").format() == ("in_c3_r224-stem_k3_s2_c64_mp1_vp1-fire_r2_s1_c128-fire_r2_s2_c256-"
                                          "fire_r2_s2_c384-fire_r2_s1_c512-fc_c1000_cv1")
    layers = [l for l in layer_table(squeezenet("1.0")) if l.kind == "maxpool"]
    assert [l.out_shape[2] for l in layers] == [54, 27, 13]  # torchvision's feature sizes


def test_googlenet_counts_and_structure() -> None:
    """torchvision's googlenet (aux_logits=False) parameter for parameter; the paper's 5x5 branch
    as an option; max pools before 3a, 4a and 5a at 28, 14 and 7 pixels."""
    assert count_costs(googlenet()).params == 6_624_904
    assert count_costs(googlenet(five_kernel=5)).params == 7_005_832
    text = googlenet().format()
    assert text.startswith("in_c3_r224-stem_k7_s2_c64_mp1-cv_r1_k1_s1_c64-cv_r1_k3_s1_c192-"
                           "inc_r1_k3_s2_c256_o64_tr96_t128_fr16_f32_pp32-inc_r1_k3_s1_c480_o128_tr128_t192_fr32_f96_pp64-")
    assert text.endswith("-inc_r1_k3_s1_c1024_o384_tr192_t384_fr48_f128_pp128-fc_c1000")
    assert parse(text) == googlenet()
    pools = [l for l in layer_table(googlenet()) if l.kind == "maxpool" and l.out_shape[2] < 56]
    assert sorted({l.out_shape[2] for l in pools}, reverse=True) == [28, 14, 7]


@pytest.mark.parametrize("size, params, macs", [("s", 4.1e6, 256e6), ("m", 5.0e6, 360e6), ("l", 7.3e6, 565e6)])
def test_mixnet_parameters_as_published_and_mixed_kernels_on_channel_splits(size: str, params: float,
                                                                           macs: float) -> None:
    """MixNet-S/M/L: parameters within 1% of the paper's; multiply-adds 2-7% under its FLOPs
    column (239/339/555 M against 256/360/565 M: the paper's counter is not published, timm's
    definitions built as given); mixed kernels as depthwise convs on channel splits."""
    spec = FAMILIES[f"mixnet_{size}"]()
    costs = count_costs(spec)
    assert costs.params == pytest.approx(params, rel=0.01)
    assert 0.93 * macs <= costs.macs <= 0.99 * macs
    assert parse(spec.format()) == spec
    kernels = sorted({l.kernel for l in layer_table(spec) if l.kind == "dwconv"})
    assert kernels[:5] == [3, 5, 7, 9, 11] if size == "s" else kernels[:4] == [3, 5, 7, 9]


def test_every_family_builds_from_the_cli_registry() -> None:
    for name, family in FAMILIES.items():
        if name == "fbnet":
            continue
        spec = family(width=1.0, resolution=224, classes=1000, in_chs=3)
        assert parse(spec.format()) == spec, name
    with pytest.raises(UserError, match="vgg depth 12 not allowed; allowed: 11, 13, 16, 19"):
        vgg(12)


def test_mnasnet_a1_at_1_4_has_timms_parameter_count() -> None:
    """timm's semnasnet_140 (MnasNet-A1 at 1.4, its 1280 head kept): 6.11M parameters."""
    assert count_costs(mnasnet_a1(width=1.4)).params == pytest.approx(6.11e6, rel=0.02)
