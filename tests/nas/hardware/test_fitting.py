"""Fitting recovers a known device, cross-validates on held-out halves, and carries to a sibling."""
from __future__ import annotations

from nas.cost.layers import layer_table, module_layers
from nas.hardware.fitting import BlockMeasurement, FitOptions, cross_validate, fit_linear, fit_roofline, score
from nas.hardware.hwnasbench import block_module
from nas.hardware.latency_model import DeviceModel, FittedModel, predict
from nas.hardware.plan import COMPUTE_KINDS
from nas.hardware.profile_build import designed_architectures


def _synthetic_blocks(device: DeviceModel) -> list[BlockMeasurement]:
    keys = [f"ConvBlock_H{h}_W{h}_Cin{c}_Cout{c}_exp{e}_kernel{k}_stride1_group{g}"
            for h in (8, 16, 32) for c in (16, 32) for e in (1, 3, 6) for k in (3, 5) for g in (1, 2) if e == 1 or g == 1]
    blocks = []
    for key in keys:
        layers = module_layers(*block_module(key))
        blocks.append(BlockMeasurement(key, layers, predict(layers, device).total_ms))
    return blocks


def test_fit_recovers_a_known_device() -> None:
    truth = FittedModel(efficiency={"conv": 0.5, "pwconv": 0.4, "gconv": 0.1, "dwconv": 0.05, "linear": 0.3},
                        bandwidth_efficiency=0.6,
                        overhead_ms={k: 0.002 for k in COMPUTE_KINDS} | {"shuffle": 0.01, "add": 0.001})
    options = FitOptions(form="roofline", macs_per_s=50e9, bandwidth_gb_s=10.0)
    blocks = _synthetic_blocks(options.device(truth))
    fitted = fit_roofline(blocks, options)
    assert score(blocks, options.device(fitted)).mdape < 0.02
    assert cross_validate(blocks, options).mdape < 0.05
    assert all(0 < e <= 1 for e in fitted.efficiency.values())


def test_a_linear_fit_carries_to_a_sibling_by_peak_and_bandwidth() -> None:
    ones = {k: 1.0 for k in COMPUTE_KINDS}
    fitted = FittedModel(efficiency=ones, bandwidth_efficiency=1.0, overhead_ms={"pwconv": 0.01}, form="linear",
                         linear_terms={"pwconv": {"mmac": 2.0, "in_mb": 1.0, "group": 0.5, "group_mpos": 3.0}})
    carried = fitted.carried(peak_ratio=0.5, bandwidth_ratio=0.25)  # half the peak, a quarter of the bandwidth
    assert carried.linear_terms == {"pwconv": {"mmac": 4.0, "in_mb": 4.0, "group": 0.5, "group_mpos": 6.0}}
    assert carried.overhead_ms == fitted.overhead_ms
    roofline = FittedModel(efficiency=ones | {"pwconv": 0.5}, bandwidth_efficiency=0.5, overhead_ms={})
    assert roofline.carried(0.5, 0.25) == roofline  # efficiencies are shares of peak: they carry unchanged


def test_linear_fit_recovers_a_known_linear_device() -> None:
    ones = {k: 1.0 for k in ("conv", "pwconv", "gconv", "dwconv", "linear")}
    truth = FittedModel(ones, 1.0, {"pwconv": 0.002, "dwconv": 0.003, "add": 0.001, "reorder": 0.004},
                        run_overhead_ms=0.01, layout_block=16, runtime="onnxruntime", form="linear",
                        linear_terms={"pwconv_blocked": {"mmac": 0.02, "in_mb": 0.01, "out_mb": 0.03},
                                      "dwconv_blocked": {"mmac": 0.05, "in_mb": 0.02, "weight_mb": 0.1},
                                      "conv_blocked": {"mmac": 0.03}, "linear": {"mmac": 0.1},
                                      "gconv": {"mmac": 0.08, "in_mb": 0.01, "group": 0.001, "group_mpos": 0.2},
                                      "gap": {"in_mb": 0.05}, "shuffle": {"in_mb": 0.1, "out_mb": 0.1},
                                      "reorder_in": {"in_mb": 0.03}, "reorder_out": {"out_mb": 0.02},
                                      "add": {"in_mb": 0.02}, "act": {"out_mb": 0.01}})
    options = FitOptions(form="linear", macs_per_s=1.0, bandwidth_gb_s=1.0, layout_block=16, run_overhead=True,
                         runtime="onnxruntime")
    blocks = []
    for spec in designed_architectures(80, seed=3):
        layers = layer_table(spec)
        blocks.append(BlockMeasurement(spec.format(), layers, predict(layers, options.device(truth)).total_ms))
    fitted = fit_linear(blocks, options)
    assert score(blocks, options.device(fitted)).mdape < 0.01
    # Every network has one fc and one global pool, so the per-inference overhead and theirs are not
    # separable: the predictions above are what must match, not each parameter.
