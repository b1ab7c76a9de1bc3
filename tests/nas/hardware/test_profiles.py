"""Profiles: bundled ones load, sibling calibration carries to the target's peaks, linear units are
named (old pairs still load), YAML errors are one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nas.core.errors import UserError
from nas.cost.layers import layer_table
from nas.hardware.calibrate import Sibling, calibrate_profile
from nas.hardware.latency_model import predict
from nas.hardware.profiles import bundled_profiles, calibrated_predicted_profiles, load_profile, profile_path
from nas.space.arch import parse


def test_sibling_calibration_carries_efficiencies_to_the_target_peaks(tmp_path: Path) -> None:
    keys = [f"ConvBlock_H{h}_W{h}_Cin{c}_Cout{c}_exp{e}_kernel3_stride1_group{g}"
            for h in (8, 16) for c in (16, 32) for e in (1, 3) for g in (1, 2) if e == 1 or g == 1]
    keys += ["ConvNorm_H32_W32_Cin3_Cout16_kernel3_stride2_group1", "FC_Cin64_Cout10", "AvgP_H4_W4_Cin64_Cout64"]
    table = {"tx2_latency": {k: 0.05 + 0.01 * i for i, k in enumerate(keys)}}
    out = tmp_path / "nano.yaml"
    calibrate_profile(profile_path("jetson-nano"), table, "tx2_latency", out=out,
                      sibling=Sibling("Jetson TX2", 332.8e9, 59.7))
    nano = load_profile(out)
    before = load_profile("jetson-nano")
    assert nano.version == str(int(before.version) + 1) and "carried across" in (nano.model or {})["fp32"].fit
    assert "chosen by held-out MdAPE: roofline" in (nano.model or {})["fp32"].fit  # form auto: both fitted
    assert nano.device is not None and nano.device.macs_per_s["fp32"].value == pytest.approx(117.96e9)
    # The efficiencies are the ones fitted on the sibling: predictions scale with the Nano's peaks.
    assert (nano.model or {})["fp32"].efficiency != (before.model or {})["fp32"].efficiency
    assert set(yaml.safe_load(out.read_text())["model"]) == set(before.model or {})



def test_linear_terms_units_are_named_and_old_pairs_still_load(tmp_path: Path) -> None:
    model = {"efficiency": {k: 1.0 for k in ("conv", "pwconv", "gconv", "dwconv", "linear")},
             "bandwidth_efficiency": 1.0, "overhead_ms": {}, "fuses_activations": True, "fit": "by hand",
             "form": "linear", "linear_terms": {"pwconv": [0.02, 0.5], "gap": {"in_mb": 0.1}}}
    raw = {"name": "p", "version": "1", "kind": "predicted", "description": "d", "provenance": "p",
           "device": {"macs_per_s": {"fp32": {"value": 1e9, "source": "s"}},
                      "bandwidth_gb_s": {"value": 1.0, "source": "s"}},
           "model": {"fp32": model}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    device = load_profile(path).device_model("fp32")
    assert device.fitted.linear_terms == {"pwconv": {"mmac": 0.02, "mb": 0.5}, "gap": {"in_mb": 0.1}}
    layers = layer_table(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"))
    per_layer = predict(layers, device).per_layer
    for kind, expected in (("pwconv", lambda l: 0.02 * l.macs * 1e-6 + 0.5 * 4e-6 * (l.in_elems + l.out_elems
                                                                                      + l.weight_elems)),
                           ("gap", lambda l: 0.1 * 4e-6 * l.in_elems)):
        predicted = sum(ms for _, k, ms in per_layer if k == kind)
        assert predicted > 0 and predicted == pytest.approx(sum(expected(l) for l in layers if l.kind == kind))
    model["linear_terms"] = {"pwconv": {"flops": 1.0}}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"linear_terms.pwconv: 'flops' not allowed; allowed: mmac, mb, in_mb"):
        load_profile(path)
    path.write_text("name: p\nprovenance: a: b\n")
    with pytest.raises(UserError, match=r"p.yaml: not valid YAML at line 2, column 14: mapping values are not allowed"):
        load_profile(path)


def test_every_bundled_profile_loads_and_the_calibrated_ones_predict() -> None:
    layers = layer_table(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"))
    names = set(bundled_profiles())
    devices = {"edgetpu", "edgetpu-devboard", "zynq-zcu102-dpu", "jetson-nano", "raspberry-pi4"}
    hwnasbench = {"jetson-nano-hwnasbench", "raspberry-pi4-hwnasbench", "zynq-zc706"}
    assert names == devices | hwnasbench | {"cpu"}
    calibrated = {p.name: set(p.model or ()) for p in calibrated_predicted_profiles()}
    assert set(calibrated) == devices | hwnasbench
    assert calibrated["edgetpu"] == calibrated["zynq-zcu102-dpu"] == {"int8"}
    assert calibrated["jetson-nano"] == {"fp16", "fp32"} and calibrated["raspberry-pi4"] == {"fp32", "int8"}
    for name in names:
        profile = load_profile(name)
        assert profile.name == name and profile.version
        # a predicted profile says what runtime and conditions its numbers hold for
        assert profile.kind == "measured" or (profile.conditions is not None and profile.conditions.runtime)
        for precision, fitted in (profile.model or {}).items():
            assert fitted.fit  # every fitted model says how it was fitted
            assert predict(layers, profile.device_model(precision), precision=precision).total_ms > 0


def test_uncalibrated_and_measured_profiles_say_why_they_cannot_predict(tmp_path: Path) -> None:
    raw = yaml.safe_load(profile_path("edgetpu").read_text())
    del raw["model"]
    (tmp_path / "edgetpu.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match="edgetpu@.* is not calibrated yet"):
        load_profile(tmp_path / "edgetpu.yaml").device_model("int8")
    with pytest.raises(UserError, match="cpu@.* is measured, not predicted"):
        load_profile("cpu").device_model("fp32")
    with pytest.raises(UserError, match="cannot run int8; allowed"):
        load_profile("raspberry-pi4-hwnasbench").device_model("int8")
