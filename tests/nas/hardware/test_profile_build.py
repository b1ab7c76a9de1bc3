"""hwnas profile build: the designed set, exports at each precision, layout detection, timing in
passes, and the measurement file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from compress.quantize import quantize_int8_static
from nas.core.errors import UserError
from nas.deploy.host_latency import session
from nas.hardware.profile_build import (
    FORMAT,
    at_precision,
    build_measurements,
    designed_architectures,
    detect_layout_block,
    export_for_timing,
    load_measurements,
    profile_skeleton,
    time_networks,
)
from nas.hardware.profiles import load_profile
from nas.space.arch import parse
from nas.space.builder import build


def test_designed_set_is_distinct_valid_and_covers_every_block_type() -> None:
    archs = designed_architectures(60, seed=0)
    texts = [a.format() for a in archs]
    assert len(set(texts)) == 60 and all(parse(t).format() == t for t in texts)
    kinds = {stage.kind for a in archs for stage in a.stages}
    assert {"ir", "ds", "sh", "sh2", "fb"} <= kinds
    assert [a.format() for a in designed_architectures(60, seed=0)] == texts


def test_int8_and_fp16_exports_check_and_run() -> None:
    spec = parse("in_c1_r16-stem_k3_s2_c16-ir_r1_k3_s1_e3_c16-sh_r1_s2_g2_c32-head_c64-fc_c10")
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
        quantize_int8_static(fp32, x, method="kl")


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


@pytest.mark.skipif(not _cpu_flags() & {"avx2", "avx512f"}, reason="an x86 CPU with AVX2 or AVX-512 (MLAS NCHWc)")
def test_layout_block_detection_matches_the_cpu() -> None:
    """onnxruntime's MLAS blocks NCHWc by 16 channels with AVX-512, by 8 with AVX2."""
    assert detect_layout_block(threads=1) == (16 if "avx512f" in _cpu_flags() else 8)


def test_build_measurements_times_every_network_in_passes(tmp_path: Path) -> None:
    data = build_measurements("tiny", n=12, repeats=5, rounds=2)
    assert data["format"] == FORMAT and len(data["measurements"]) == 24  # 12 networks x fp32, int8
    cond = data["conditions"]
    assert cond["threads"] == 1 and cond["repeats"] == 5 and cond["runtime"].startswith("onnxruntime")
    assert cond["rounds"] == 2 and "median over rounds" in cond["statistic"]
    for row in data["measurements"]:  # the figure is the median of the two passes: their mean
        assert len(row["round_ms"]) == 2 and row["latency_ms"] == pytest.approx(np.mean(row["round_ms"]))
    (tmp_path / "m.json").write_text(json.dumps(data))
    assert load_measurements(tmp_path / "m.json") == data
    (tmp_path / "tiny.yaml").write_text(__import__("yaml").safe_dump(profile_skeleton(data)))
    assert load_profile(tmp_path / "tiny.yaml").model is None  # skeleton: version 1, uncalibrated


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
