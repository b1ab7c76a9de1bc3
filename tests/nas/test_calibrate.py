from __future__ import annotations

from pathlib import Path

import pytest

from nas.space.blocks import FBNetBlock
from nas.hardware.calibrate import BlockMeasurement, block_module, cross_validate, fit, hwnasbench_measurements, score
from nas.core.errors import UserError
from nas.hardware.latency_model import COMPUTE_KINDS, DeviceModel, predict
from nas.cost.layers import module_layers

SHARED_TABLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "hwnasbench_fbnet_blocks.json"


def test_block_keys_become_modules() -> None:
    module, shape = block_module("ConvBlock_H56_W56_Cin24_Cout32_exp6_kernel5_stride2_group1")
    assert isinstance(module, FBNetBlock) and shape == (1, 24, 56, 56)
    assert module.body[2][0].kernel_size == (5, 5) and module.body[2][0].stride == (2, 2)
    kinds = [l.kind for l in module_layers(*block_module("ConvBlock_H8_W8_Cin64_Cout64_exp1_kernel3_stride1_group2"))]
    assert kinds == ["gconv", "act", "shuffle", "dwconv", "act", "gconv", "add"]
    assert [l.kind for l in module_layers(*block_module("FC_Cin1504_Cout100"))] == ["linear"]
    assert module_layers(*block_module("Skip_H8_W8_Cin64_Cout64_stride1")) == []
    with pytest.raises(UserError, match="unknown HW-NAS-Bench block 'Pool_H8'"):
        block_module("Pool_H8")


def _synthetic_blocks(device: DeviceModel) -> list[BlockMeasurement]:
    keys = [f"ConvBlock_H{h}_W{h}_Cin{c}_Cout{c}_exp{e}_kernel{k}_stride1_group{g}"
            for h in (8, 16, 32) for c in (16, 32) for e in (1, 3, 6) for k in (3, 5) for g in (1, 2) if e == 1 or g == 1]
    blocks = []
    for key in keys:
        layers = module_layers(*block_module(key))
        blocks.append(BlockMeasurement(key, layers, predict(layers, device).total_ms))
    return blocks


def test_fit_recovers_a_known_device() -> None:
    truth = DeviceModel(macs_per_s={"fp32": 50e9}, bandwidth_gb_s=10.0,
                        efficiency={"conv": 0.5, "pwconv": 0.4, "gconv": 0.1, "dwconv": 0.05, "linear": 0.3},
                        bandwidth_efficiency=0.6,
                        overhead_ms={k: 0.002 for k in COMPUTE_KINDS} | {"shuffle": 0.01, "add": 0.001})
    blocks = _synthetic_blocks(truth)
    fitted = fit(blocks, macs_per_s=50e9, bandwidth_gb_s=10.0)
    device = DeviceModel(macs_per_s={"fp32": 50e9}, bandwidth_gb_s=10.0, efficiency=fitted.efficiency,
                         bandwidth_efficiency=fitted.bandwidth_efficiency, overhead_ms=fitted.overhead_ms)
    assert score(blocks, device).mdape < 0.02
    assert cross_validate(blocks, macs_per_s=50e9, bandwidth_gb_s=10.0).mdape < 0.05
    assert all(0 < e <= 1 for e in fitted.efficiency.values())


@pytest.mark.skipif(not SHARED_TABLE.exists(), reason="../shared/data/hwnasbench_fbnet_blocks.json not present")
def test_hwnasbench_fpga_zeros_are_left_out() -> None:
    from nas.hardware.hwnasbench import load_table

    blocks, left_out = hwnasbench_measurements(load_table(SHARED_TABLE), "fpga_latency")
    assert len(blocks) + left_out == 225 and left_out >= 12 and all(b.latency_ms > 0 for b in blocks)


def test_calibrating_a_profile_refuses_parameters_the_data_cannot_identify(tmp_path: Path) -> None:
    from nas.hardware.calibrate import calibrate_profile

    table = {"x_latency": {"ConvBlock_H8_W8_Cin16_Cout16_exp1_kernel3_stride1_group1": 0.1}}
    source = Path(__file__).resolve().parents[2] / "hw_profiles" / "raspberry-pi4.yaml"
    with pytest.raises(UserError, match="no conv, gconv, linear, shuffle layers"):
        calibrate_profile(source, table, "x_latency", out=tmp_path / "p.yaml")
    assert not (tmp_path / "p.yaml").exists()


def test_kinds_the_data_lacks_can_be_assumed_to_run_like_a_fitted_one(tmp_path: Path) -> None:
    from nas.hardware.calibrate import calibrate_profile
    from nas.hardware.profiles import load_profile

    keys = [f"ConvBlock_H{h}_W{h}_Cin{c}_Cout{c}_exp{e}_kernel3_stride1_group{g}"
            for h in (8, 16) for c in (16, 32) for e in (1, 3) for g in (1, 2)]
    table = {"x_latency": {k: 0.05 + 0.01 * i for i, k in enumerate(keys)}}  # no stem (conv) and no FC (linear)
    source = Path(__file__).resolve().parents[2] / "hw_profiles" / "zynq-zc706.yaml"
    out = tmp_path / "p.yaml"
    with pytest.raises(UserError, match=r"no conv, linear layers.*--assume conv=pwconv"):
        calibrate_profile(source, table, "x_latency", out=out, precision="fp16")
    with pytest.raises(UserError, match="--assume conv=linear: 'linear' not allowed; allowed: compute kinds the "
                                        "measurements have"):
        calibrate_profile(source, table, "x_latency", out=out, precision="fp16", assume={"conv": "linear"})
    with pytest.raises(UserError, match="--assume pwconv=dwconv: 'pwconv' not allowed"):
        calibrate_profile(source, table, "x_latency", out=out, precision="fp16",
                          assume={"conv": "pwconv", "linear": "pwconv", "pwconv": "dwconv"})
    assert not out.exists()
    calibrate_profile(source, table, "x_latency", out=out, precision="fp16",
                      assume={"conv": "pwconv", "linear": "pwconv"})
    model = (load_profile(out).model or {})["fp16"]
    assert model.efficiency["conv"] == model.efficiency["linear"] == model.efficiency["pwconv"]
    assert model.overhead_ms["conv"] == model.overhead_ms["pwconv"]
    assert "ASSUMED, not in the data: conv runs with the fitted parameters of pwconv" in model.fit


def test_a_linear_fit_carries_to_a_sibling_by_peak_and_bandwidth() -> None:
    from nas.hardware.calibrate import Fit

    fitted = Fit(efficiency={}, bandwidth_efficiency=1.0, overhead_ms={"pwconv": 0.01}, form="linear",
                 linear_terms={"pwconv": {"mmac": 2.0, "in_mb": 1.0, "group": 0.5, "group_mpos": 3.0}})
    carried = fitted.carried(peak_ratio=0.5, bandwidth_ratio=0.25)  # half the peak, a quarter of the bandwidth
    assert carried.linear_terms == {"pwconv": {"mmac": 4.0, "in_mb": 4.0, "group": 0.5, "group_mpos": 6.0}}
    assert carried.overhead_ms == fitted.overhead_ms
    roofline = Fit(efficiency={"pwconv": 0.5}, bandwidth_efficiency=0.5, overhead_ms={})
    assert roofline.carried(0.5, 0.25) == roofline  # efficiencies are shares of peak: they carry unchanged
