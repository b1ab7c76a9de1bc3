"""Whole-network fitting: it recovers a model that generated the latencies, scales one precision
from another, counts skipped rows, and refuses what it cannot cross-validate."""
from __future__ import annotations

import pytest

from nas.core.errors import UserError
from nas.cost.layers import layer_table
from nas.hardware.network_fit import (
    NetworkFitOptions,
    NetworkMeasurement,
    features,
    fit_networks,
    leave_one_family_out,
    predict_network,
    read_network_rows,
)
from nas.space.arch import parse

ARCHS = {  # family -> arch strings
    "ir": ["in_c3_r32-stem_k3_s2_c16-ir_r2_k3_s2_e4_c24-head_c64-fc_c10",
           "in_c3_r48-stem_k3_s2_c16-ir_r3_k5_s2_e6_c32-head_c128-fc_c10"],
    "rb": ["in_c3_r32-stem_k3_s2_c16-rb_r2_s2_c32-head_c64-fc_c10",
           "in_c3_r64-stem_k3_s2_c24-rb_r2_s2_c48-head_c96-fc_c10"],
    "vgg": ["in_c3_r32-stem_k3_s1_c16-vgg_r2_s2_c32-head_c64-fc_c10",
            "in_c3_r40-stem_k3_s1_c16-vgg_r3_s2_c48-head_c64-fc_c10"],
}
TRUE = {"run": 0.7, "mmac": 0.02, "mmac_dw": 0.05, "act_mb": 0.3, "weight_mb": 0.9}


def _measured(precision: str, scale: float = 1.0, extra: float = 0.0) -> list[NetworkMeasurement]:
    out = []
    for family, archs in ARCHS.items():
        for arch in archs:
            spec = parse(arch)
            feats = features(layer_table(spec), NetworkFitOptions(precision=precision))
            ms = sum(TRUE[k] * v for k, v in feats.items()) * scale + extra
            out.append(NetworkMeasurement(arch, family, spec, ms))
    return out


def test_fit_recovers_the_latencies_a_known_model_generated() -> None:
    measured = _measured("fp32")
    fitted = fit_networks(measured, NetworkFitOptions(precision="fp32"))
    for m in measured:
        assert predict_network(fitted, m.spec, "fp32") == pytest.approx(m.latency_ms, rel=1e-4)


def test_a_family_left_out_is_predicted_without_its_own_rows() -> None:
    """A family ten times slower than the model says is missed by about 90% when left out (its
    rows did not pull the fit)."""
    measured = [NetworkMeasurement(m.key, m.family, m.spec, m.latency_ms * (10 if m.family == "rb" else 1))
                for m in _measured("fp32")]
    score = leave_one_family_out(measured, NetworkFitOptions(precision="fp32"))
    assert (score.n, score.families) == (6, 3)
    off = [p / m.latency_ms - 1 for m, p in zip(measured, score.predicted) if m.family == "rb"]
    assert all(-0.95 < o < -0.8 for o in off)


def test_a_precision_scaled_from_another_reproduces_a_scaled_device() -> None:
    fp32 = _measured("fp32")
    int8 = [NetworkMeasurement(m.key, m.family, m.spec, 0.4 * m.latency_ms + 1.5) for m in fp32]
    options = NetworkFitOptions(precision="int8", scale_from="fp32")
    fitted = fit_networks(int8, options, fp32)
    for m in int8:
        assert predict_network(fitted, m.spec, "int8") == pytest.approx(m.latency_ms, rel=1e-3)
    assert leave_one_family_out(int8, options, fp32).within_20pct == 1.0
    with pytest.raises(UserError, match="needs measurements at fp32"):
        fit_networks(int8, options)


def test_rows_of_other_runtimes_and_precisions_are_skipped_and_counted() -> None:
    rows = [{"network": "resnet18", "runtime": "trt", "precision": "fp16", "latency_ms": "11.4"},
            {"network": "resnet18", "runtime": "ncnn", "precision": "fp16", "latency_ms": "40"},
            {"network": "vgg11", "runtime": "TRT", "precision": "fp32", "latency_ms": "70", "family": "vgg"},
            {"network": ARCHS["ir"][0], "runtime": "trt", "precision": "fp16", "latency_ms": "0.5"}]
    kept, skipped = read_network_rows(rows, runtime="trt", precision="fp16")
    assert [m.family for m in kept] == ["resnet18", "arch"] and kept[1].spec == parse(ARCHS["ir"][0])
    assert skipped == {"other runtime": 1, "other precision": 1}
    for bad, match in (({"latency_ms": "-1"}, "latency_ms"), ({"network": "alexnet"}, "alexnet"),
                       ({"resolution": "30000"}, "resolution"), ({"width": "x"}, "width")):
        with pytest.raises(UserError, match=match):
            read_network_rows([rows[0] | bad], runtime="trt", precision="fp16")


def test_cross_validation_needs_two_families() -> None:
    one = [m for m in _measured("fp32") if m.family == "ir"]
    with pytest.raises(UserError, match="at least 2 families"):
        leave_one_family_out(one, NetworkFitOptions(precision="fp32"))


GPU_ARCHS = {**ARCHS, "ds": ["in_c3_r64-stem_k3_s2_c16-ds_r2_k3_s2_c32-head_c64-fc_c10",
                               "in_c3_r96-stem_k3_s2_c32-ds_r3_k5_s1_c32-head_c64-fc_c10"],
             "sh": ["in_c3_r64-stem_k3_s2_c16-sh_r2_s2_g2_c32-head_c64-fc_c10",
                    "in_c3_r48-stem_k3_s1_c24-ir_r4_k7_s1_e6_c24-head_c256-fc_c10"]}


def test_gpu_terms_fit_a_time_per_op_and_per_depthwise_mb() -> None:
    """With gpu_terms, a generating model that pays a time per op and per MB of depthwise
    activations is recovered: every op kind carries the per-op time, depthwise kinds the extra
    time per MB, and the networks are predicted as generated."""
    truth = {**TRUE, "op": 0.03, "dw_mb": 0.4}
    options = NetworkFitOptions(precision="fp16", gpu_terms=True)
    measured = []
    for family, archs in GPU_ARCHS.items():
        for arch in archs:
            spec = parse(arch)
            feats = features(layer_table(spec), options)
            assert feats["op"] >= 4  # stem, blocks, head, classifier
            measured.append(NetworkMeasurement(arch, family, spec, sum(truth[k] * v for k, v in feats.items())))
    fitted = fit_networks(measured, options)
    for m in measured:
        assert predict_network(fitted, m.spec, "fp16") == pytest.approx(m.latency_ms, rel=1e-3)
    assert fitted.overhead_ms and all(v == pytest.approx(0.03, rel=0.05) for v in fitted.overhead_ms.values())
    extra = fitted.linear_terms["dwconv"]["in_mb"] - fitted.linear_terms["conv"]["in_mb"]
    assert extra == pytest.approx(0.4, rel=0.05)
    assert "op" not in features(layer_table(measured[0].spec), NetworkFitOptions(precision="fp16"))
