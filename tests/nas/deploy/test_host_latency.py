"""Host latency: median and p90 of repeated onnxruntime runs, with the conditions recorded."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.deploy.export import DeployInfo, to_onnx
from nas.deploy.host_latency import measure_latency, session
from nas.space.arch import parse
from nas.space.builder import build


def test_latency_measurement_records_conditions(tmp_path: Path) -> None:
    spec = parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2")
    info = DeployInfo(arch=spec.format(), input_shape=(1, 1, 8, 8), resize="none", mean=(0.0,), std=(1.0,),
                      channel_order="gray", classes=("a", "b"))
    m = measure_latency(to_onnx(build(spec), info), (1, 1, 8, 8), threads=1, warmup=2, repeats=9)
    assert 0 < m.median_ms <= m.p90_ms and m.threads == 1 and m.repeats == 9
    assert "1 thread(s)" in m.describe() and "onnxruntime" in m.runtime
    assert np.isfinite(m.median_ms)


def test_sessions_run_with_the_threads_asked_for(tmp_path: Path) -> None:
    spec = parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2")
    info = DeployInfo(arch=spec.format(), input_shape=(1, 1, 8, 8), resize="none", mean=(0.0,), std=(1.0,),
                      channel_order="gray", classes=("a", "b"))
    path = tmp_path / "m.onnx"
    path.write_bytes(to_onnx(build(spec), info))
    sess = session(path, threads=2)
    assert sess.get_session_options().intra_op_num_threads == 2
    assert sess.run(None, {"input": np.zeros((3, 1, 8, 8), np.float32)})[0].shape == (3, 2)  # dynamic batch
