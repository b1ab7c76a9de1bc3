from __future__ import annotations

import pytest

from nas.core.errors import UserError
from nas.cost.layers import layer_table
from nas.hardware.latency_model import DeviceModel, FittedModel, predict
from nas.hardware.plan import ALL_KINDS, COMPUTE_KINDS
from nas.space.arch import parse

SMALL = "in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"


def _device(*, efficiency: dict[str, float] | None = None, overhead_ms: dict[str, float] | None = None,
            fuses_activations: bool = True, supported_kinds: tuple[str, ...] = ALL_KINDS) -> DeviceModel:
    fitted = FittedModel(efficiency=efficiency or {k: 1.0 for k in COMPUTE_KINDS}, bandwidth_efficiency=1.0,
                         overhead_ms=overhead_ms or {}, fuses_activations=fuses_activations)
    return fitted.on(macs_per_s={"fp32": 1e9, "int8": 4e9}, bandwidth_gb_s=1.0, supported_kinds=supported_kinds)


def test_roofline_by_hand() -> None:
    # 1 GMAC/s and 1 GB/s: a layer takes max(MACs, bytes) nanoseconds.
    # stem: 4608 MACs vs (64 + 512 + 80) * 4 B -> 4608; dw: 4608; project: 4096 MACs vs 4384 B -> 4384;
    # add: (1024 + 512) * 4 B = 6144; head: 8192 MACs; gap: (1024 + 16) * 4 = 4160; fc: 52 * 4 = 208.
    expected_ns = 4608 + 4608 + 4384 + 6144 + 8192 + 4160 + 208
    prediction = predict(layer_table(parse(SMALL)), _device())
    assert prediction.total_ms == pytest.approx(expected_ns * 1e-6)
    by_kind = {kind: ms for _, kind, ms in prediction.per_layer}
    assert "act" not in by_kind and "flatten" not in by_kind  # fused, free: not executed


def test_efficiency_overhead_precision_and_unfused_activations() -> None:
    layers = layer_table(parse(SMALL))
    slow_dw = predict(layers, _device(efficiency={**{k: 1.0 for k in COMPUTE_KINDS}, "dwconv": 0.5}))
    assert slow_dw.total_ms == pytest.approx(predict(layers, _device()).total_ms + 4608e-6)
    with_overhead = predict(layers, _device(overhead_ms={"pwconv": 0.01}))
    assert with_overhead.total_ms == pytest.approx(predict(layers, _device()).total_ms + 0.02)
    unfused = predict(layers, _device(fuses_activations=False))
    assert unfused.total_ms > predict(layers, _device()).total_ms
    int8 = predict(layers, _device(), precision="int8")
    assert int8.total_ms < predict(layers, _device()).total_ms


def test_unsupported_kinds_and_precisions_are_named() -> None:
    layers = layer_table(parse("in_c3_r16-stem_k3_s2_c24_mp1-sh_r1_s2_g3_c48-fc_c10"))
    with pytest.raises(UserError, match="cannot price op kind\\(s\\) concat, maxpool, shuffle"):
        predict(layers, _device(supported_kinds=COMPUTE_KINDS + ("act", "flatten", "avgpool", "gap", "add")),
                where="edgetpu@1")
    with pytest.raises(UserError, match="cannot run fp16; allowed: fp32, int8"):
        predict(layers, _device(), precision="fp16")


def test_held_out_ratios_give_the_band_and_survive_the_profile_file() -> None:
    ratios = tuple(0.8 + 0.04 * i for i in range(11))  # 0.80 ... 1.20
    fitted = FittedModel(efficiency={k: 1.0 for k in COMPUTE_KINDS}, bandwidth_efficiency=1.0, overhead_ms={},
                         held_out_ratios=ratios, held_out_how="leave-one-family-out over 11 networks")
    lo, hi = fitted.band(10.0) or (0.0, 0.0)
    assert lo == pytest.approx(8.4) and hi == pytest.approx(11.6)
    assert fitted.ratio_at(0.5) == pytest.approx(1.0)
    section = fitted.to_section()
    assert section["held_out_ratios"] == sorted(round(r, 4) for r in ratios)
    assert FittedModel(efficiency=fitted.efficiency, bandwidth_efficiency=1.0, overhead_ms={}).band(10.0) is None
    with pytest.raises(UserError, match="model.held_out_ratios"):
        FittedModel(efficiency=fitted.efficiency, bandwidth_efficiency=1.0, overhead_ms={}, held_out_ratios=(0.0,))
