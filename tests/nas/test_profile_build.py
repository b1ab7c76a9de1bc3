from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

from nas.space.arch import ArchSpec, parse
from nas.space.builder import build
from nas.hardware.calibrate import BlockMeasurement, fit_linear, score
from nas.cli import main
from nas.core.errors import UserError
from nas.deploy.host_latency import session
from nas.hardware.latency_model import DeviceModel, plan, predict
from nas.cost.layers import layer_table
from nas.hardware.profile_build import (
    FORMAT,
    at_precision,
    designed_architectures,
    detect_layout_block,
    export_for_timing,
    load_measurements,
    time_networks,
)
from nas.hardware.profiles import load_profile


def test_designed_set_is_distinct_valid_and_covers_every_block_type() -> None:
    archs = designed_architectures(60, seed=0)
    texts = [a.format() for a in archs]
    assert len(set(texts)) == 60 and all(parse(t).format() == t for t in texts)
    kinds = {stage.kind for a in archs for stage in a.stages}
    assert {"ir", "ds", "sh", "sh2", "fb"} <= kinds
    assert [a.format() for a in designed_architectures(60, seed=0)] == texts


def test_blocked_layout_pads_channels_and_pays_reorders() -> None:
    layers = layer_table(parse("in_c1_r8-stem_k3_s1_c24-sh_r1_s1_g2_c32-head_c64-fc_c2"))
    ops = {op.name: op for op in plan(layers, runtime="onnxruntime", layout_block=16)}
    stem = layers[0]
    assert ops[stem.name].key == "conv_blocked" and ops[stem.name].macs == pytest.approx(stem.macs * 32 / 24)
    gconv = next(l for l in layers if l.kind == "gconv")
    assert ops[gconv.name].key == "gconv" and ops[gconv.name].macs == gconv.macs
    assert [op.key for op in ops.values() if op.kind == "reorder"][:1] == ["reorder_out"]  # blocked stem -> gconv
    device = DeviceModel({"fp32": 1e9}, 1.0, {"conv": 1.0, "pwconv": 1.0, "gconv": 1.0, "dwconv": 1.0,
                                             "linear": 1.0, "conv_blocked": 1.0, "pwconv_blocked": 1.0,
                                             "dwconv_blocked": 1.0}, 1.0, {"reorder": 0.5}, layout_block=16,
                         runtime="onnxruntime")
    reorders = [row for row in predict(layers, device).per_layer if row[1] == "reorder"]
    assert len(reorders) >= 2  # out of the blocked stem into the grouped conv, and back
    assert predict(layers, device).total_ms > predict(layers, DeviceModel(
        {"fp32": 1e9}, 1.0, device.efficiency, 1.0, {"reorder": 0.5})).total_ms
    with pytest.raises(UserError, match="layout_block needs runtime onnxruntime"):
        DeviceModel({"fp32": 1e9}, 1.0, device.efficiency, 1.0, {}, layout_block=16)


def _optimized_graph_counts(spec: ArchSpec, tmp_path: Path) -> tuple[int, int, int, int, int]:
    """(reorders, blocked convs, plain convs, standalone activations, standalone adds) of the graph
    onnxruntime actually runs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    shape = (1, spec.in_chs, spec.resolution, spec.resolution)
    ort.InferenceSession(export_for_timing(build(spec), shape), options, providers=["CPUExecutionProvider"])
    nodes = onnx.load(str(tmp_path / "optimized.onnx")).graph.node
    convs = [n for n in nodes if n.op_type in ("Conv", "FusedConv")]
    blocked = sum(n.domain == "com.microsoft.nchwc" for n in convs)
    return (sum(n.op_type in ("ReorderInput", "ReorderOutput") for n in nodes), blocked, len(convs) - blocked,
            sum(n.op_type in ("Clip", "Relu", "HardSigmoid", "HardSwish", "Sigmoid") for n in nodes),
            sum(n.op_type in ("Add", "Sum") for n in nodes))


def test_onnxruntime_plan_matches_the_graph_onnxruntime_optimizes(tmp_path: Path) -> None:
    """The planned fusions, layouts and reorders are the ones onnxruntime makes, on every block type
    (block size as detected on this CPU; 0 where it has no NCHWc)."""
    block = detect_layout_block(threads=1)
    for spec in designed_architectures(24, seed=11):
        ops = plan(layer_table(spec), runtime="onnxruntime", layout_block=block)
        planned = (sum(op.kind == "reorder" for op in ops), sum(op.key.endswith("_blocked") for op in ops),
                   sum(op.key in ("conv", "pwconv", "gconv", "dwconv") for op in ops),
                   sum(op.kind == "act" for op in ops), sum(op.kind == "add" for op in ops))
        assert planned == _optimized_graph_counts(spec, tmp_path), spec.format()


def test_onnxruntime_int8_plan_matches_its_integer_graph(tmp_path: Path) -> None:
    """At int8 the planned transposes (NHWC <-> NCHW), integer convs and adds, and float islands
    (hard-swish) are those of the graph onnxruntime runs."""
    import onnxruntime as ort

    from nas.core.config import load_search_config

    archs = designed_architectures(12, seed=1000, space=load_search_config("quickstart").space)
    archs += [parse("in_c3_r16-stem_k3_s2_c16-ir_r2_k3_s1_e4_c16_se1_hs1-sh_r1_s2_g2_c32-head_c64-fc_c10")]
    for spec in archs:
        shape = (1, spec.in_chs, spec.resolution, spec.resolution)
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / "int8.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(at_precision(export_for_timing(build(spec), shape), shape, "int8"), options,
                             providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
        planned = plan(layer_table(spec), runtime="onnxruntime", precision="int8")
        assert (ops.count("Transpose"), ops.count("QLinearConv"), ops.count("QLinearAdd"),
                ops.count("DequantizeLinear") - 1) == (
            sum(op.kind == "reorder" for op in planned), sum(op.kind in ("conv", "pwconv", "gconv", "dwconv")
                                                            for op in planned),
            sum(op.kind == "add" for op in planned), sum(op.kind == "act" for op in planned)), spec.format()


def test_linear_fit_recovers_a_known_linear_device() -> None:
    truth = DeviceModel({"fp32": 1.0}, 1.0, {}, 1.0, {"pwconv": 0.002, "dwconv": 0.003, "add": 0.001,
                                                     "reorder": 0.004}, run_overhead_ms=0.01, layout_block=16,
                        runtime="onnxruntime",
                        form="linear",
                        linear_terms={"pwconv_blocked": {"mmac": 0.02, "in_mb": 0.01, "out_mb": 0.03},
                                      "dwconv_blocked": {"mmac": 0.05, "in_mb": 0.02, "weight_mb": 0.1},
                                      "conv_blocked": {"mmac": 0.03}, "linear": {"mmac": 0.1},
                                      "gconv": {"mmac": 0.08, "in_mb": 0.01, "group": 0.001, "group_mpos": 0.2},
                                      "gap": {"in_mb": 0.05}, "shuffle": {"in_mb": 0.1, "out_mb": 0.1},
                                      "reorder_in": {"in_mb": 0.03}, "reorder_out": {"out_mb": 0.02},
                                      "add": {"in_mb": 0.02}, "act": {"out_mb": 0.01}})
    blocks = []
    for spec in designed_architectures(80, seed=3):
        layers = layer_table(spec)
        blocks.append(BlockMeasurement(spec.format(), layers, predict(layers, truth).total_ms))
    fitted = fit_linear(blocks, layout_block=16, run_overhead=True, runtime="onnxruntime")
    assert score(blocks, fitted.device(macs_per_s=1.0, bandwidth_gb_s=1.0)).mdape < 0.01
    # Every network has one fc and one global pool, so the per-inference overhead and theirs are not
    # separable: the predictions above are what must match, not each parameter.


def test_int8_and_fp16_exports_check_and_run() -> None:
    spec = parse("in_c1_r16-stem_k3_s2_c16-ir_r1_k3_s1_e3_c16-sh_r1_s2_g2_c32-head_c64-fc_c10")
    from nas.space.builder import build

    shape = (1, 1, 16, 16)
    fp32 = export_for_timing(build(spec), shape, spec.format())
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for precision in ("int8", "fp16"):
        model = at_precision(fp32, shape, precision)
        proto = onnx.load_from_string(model)
        onnx.checker.check_model(proto)
        props = {p.key: p.value for p in proto.metadata_props}
        assert props["hwnas.precision"] == precision and props["hwnas.arch"] == spec.format()
        out = session(model, threads=1).run(None, {"input": x})[0]
        assert out.shape == (1, 10) and np.isfinite(out).all()
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load_from_string(at_precision(fp32, shape, "int8")).graph.node)
    with pytest.raises(UserError, match="calibration method 'kl' is not supported; allowed: minmax, entropy"):
        from compress.quantize import quantize_int8_static

        quantize_int8_static(fp32, x, method="kl")


def test_layout_block_detection_returns_a_block_size() -> None:
    assert detect_layout_block(threads=1) in (0, 4, 8, 16)


def test_build_then_calibrate_gives_a_working_host_profile(tmp_path: Path, idx_dir: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "build", "--name", "tiny", "--out", str(tmp_path), "--n", "24", "--repeats", "5",
                 "--rounds", "2"]) == 0
    data = load_measurements(tmp_path / "tiny-measurements.json")
    assert data["format"] == FORMAT and len(data["measurements"]) == 48  # 24 networks x fp32, int8
    cond = data["conditions"]
    assert cond["threads"] == 1 and cond["repeats"] == 5 and cond["runtime"].startswith("onnxruntime")
    assert cond["rounds"] == 2 and "median over rounds" in cond["statistic"]
    for row in data["measurements"]:  # the figure is the median of the two passes: their mean
        assert len(row["round_ms"]) == 2 and row["latency_ms"] == pytest.approx(np.mean(row["round_ms"]))
    assert load_profile(tmp_path / "tiny.yaml").model is None  # skeleton: version 1, uncalibrated
    assert main(["profile", "calibrate", str(tmp_path / "tiny.yaml"), "--measurements",
                 str(tmp_path / "tiny-measurements.json")]) == 0
    assert "[fp32]: held-out half MdAPE" in capsys.readouterr().out
    profile = load_profile(tmp_path / "tiny.yaml")
    assert profile.version == "2" and set(profile.model or {}) == {"fp32", "int8"}
    assert "hwnas profile build" in (profile.model or {})["fp32"].fit
    arch = "in_c1_r16-stem_k3_s2_c16-ir_r1_k3_s1_e3_c16-head_c64-fc_c10"
    for precision in ("fp32", "int8"):
        assert main(["cost", arch, "--profile", str(tmp_path / "tiny.yaml"), "--precision", precision, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["latency_kind"] == "predicted" and report["latency_ms"] > 0
        assert report["profile"] == "tiny" and report["profile_version"] == "2"

    # and a search can target it: latency objective and budget on its prediction
    import optuna

    from tests.conftest import tiny_config

    config = tiny_config(idx_dir, trials=1, profile=str(tmp_path / "tiny.yaml"))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    assert main(["search", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run")]) == 0
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials
    assert trial.user_attrs["latency_kind"] == "predicted" and trial.user_attrs["profile"] == "tiny"
    assert trial.user_attrs["latency_ms"] == trial.user_attrs["latency_ms_pred_tiny"] > 0


def test_measurement_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="is not a measurement file of format hwnas-measurements/1"):
        load_measurements(bad)
    data = {"format": FORMAT, "name": "x", "measurements": [], "peak_macs_per_s": {}, "bandwidth_gb_s": {}}
    bad.write_text(json.dumps(data))
    with pytest.raises(UserError, match="lacks 'conditions'"):
        load_measurements(bad)
    with pytest.raises(UserError, match="rounds 0 not allowed; allowed: integers >= 1"):
        time_networks([], ("fp32",), rounds=0)
    # the CLI refuses before probing the machine or creating the folder
    assert main(["profile", "build", "--name", "x", "--out", str(tmp_path / "out"), "--rounds", "0"]) == 2
    assert not (tmp_path / "out").exists()


def test_sibling_calibration_carries_efficiencies_to_the_target_peaks(tmp_path: Path) -> None:
    from nas.hardware.calibrate import Sibling, calibrate_profile
    from nas.hardware.profiles import profile_path

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
    assert device.linear_terms == {"pwconv": {"mmac": 0.02, "mb": 0.5}, "gap": {"in_mb": 0.1}}
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
