"""Calibrating a profile file: refused when the data cannot identify the parameters, assumptions
stated in the fit note, and what is written loads."""
from __future__ import annotations

from pathlib import Path

import pytest

from nas.core.errors import UserError
from nas.hardware.calibrate import calibrate_profile
from nas.hardware.profiles import load_profile


def test_calibrating_a_profile_refuses_parameters_the_data_cannot_identify(tmp_path: Path) -> None:
    table = {"x_latency": {"ConvBlock_H8_W8_Cin16_Cout16_exp1_kernel3_stride1_group1": 0.1}}
    source = Path(__file__).resolve().parents[3] / "hw_profiles" / "raspberry-pi4.yaml"
    with pytest.raises(UserError, match="no conv, gconv, linear, shuffle layers"):
        calibrate_profile(source, table, "x_latency", out=tmp_path / "p.yaml")
    assert not (tmp_path / "p.yaml").exists()


def test_kinds_the_data_lacks_can_be_assumed_to_run_like_a_fitted_one(tmp_path: Path) -> None:
    keys = [f"ConvBlock_H{h}_W{h}_Cin{c}_Cout{c}_exp{e}_kernel3_stride1_group{g}"
            for h in (8, 16) for c in (16, 32) for e in (1, 3) for g in (1, 2)]
    table = {"x_latency": {k: 0.05 + 0.01 * i for i, k in enumerate(keys)}}  # no stem (conv) and no FC (linear)
    source = Path(__file__).resolve().parents[3] / "hw_profiles" / "zynq-zc706.yaml"
    out = tmp_path / "p.yaml"
    with pytest.raises(UserError, match=r"no conv, linear layers.*assumption such as conv=pwconv"):
        calibrate_profile(source, table, "x_latency", out=out, precision="fp16")
    with pytest.raises(UserError, match="assumption conv=linear: 'linear' not allowed; allowed: compute kinds the "
                                        "measurements have"):
        calibrate_profile(source, table, "x_latency", out=out, precision="fp16", assume={"conv": "linear"})
    with pytest.raises(UserError, match="assumption pwconv=dwconv: 'pwconv' not allowed"):
        calibrate_profile(source, table, "x_latency", out=out, precision="fp16",
                          assume={"conv": "pwconv", "linear": "pwconv", "pwconv": "dwconv"})
    assert not out.exists()
    calibrate_profile(source, table, "x_latency", out=out, precision="fp16",
                      assume={"conv": "pwconv", "linear": "pwconv"})
    model = (load_profile(out).model or {})["fp16"]
    assert model.efficiency["conv"] == model.efficiency["linear"] == model.efficiency["pwconv"]
    assert model.overhead_ms["conv"] == model.overhead_ms["pwconv"]
    assert "ASSUMED, not in the data: conv runs with the fitted parameters of pwconv" in model.fit
