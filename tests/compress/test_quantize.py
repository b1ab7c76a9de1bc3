"""onnxruntime quantization: static int8 runs in integer kernels in both formats."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from compress.quantize import quantize_int8_static
from nas.core.errors import UserError
from nas.data.splits import Preprocess
from nas.deploy.export import DeployInfo, to_onnx
from nas.deploy.host_latency import session
from nas.space.arch import parse
from nas.space.builder import build


def _fp32_model() -> tuple[torch.nn.Module, bytes, np.ndarray]:
    """A residual network's fp32 export and 64 calibration inputs."""
    spec = parse("in_c3_r16-stem_k3_s2_c16-ir_r2_k3_s1_e4_c16-ir_r2_k3_s2_e4_c24-head_c64-fc_c10")
    torch.manual_seed(0)
    model = build(spec).eval()
    pre = Preprocess(source_size=16, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, channel_order="RGB")
    fp32 = to_onnx(model, DeployInfo.for_arch(spec, pre, tuple("abcdefghij")))
    return model, fp32, np.random.default_rng(0).standard_normal((64, 3, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_static_int8_runs_fully_in_integer_kernels(fmt: str, tmp_path: Path) -> None:
    """Residual adds and convs sharing an input must not stay in float between Q/DQ pairs: that
    made int8 slower than fp32 on the host (int8 activations, shared DQ nodes)."""

    model, fp32, x = _fp32_model()
    int8 = quantize_int8_static(fp32, x, fmt=fmt, per_channel=fmt == "qdq")
    proto = onnx.load_from_string(int8)
    onnx.checker.check_model(proto)
    assert fmt in {p.key: p.value for p in proto.metadata_props}["hwnas.quantization"]
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(int8, options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert ops.count("QLinearConv") == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert "Conv" not in ops and "Add" not in ops and ops.count("QLinearAdd") == 3  # three residual blocks
    ref = session(fp32, threads=1).run(None, {"input": x})[0]
    out = session(int8, threads=1).run(None, {"input": x})[0]
    assert np.corrcoef(ref.ravel(), out.ravel())[0, 1] > 0.98
    with pytest.raises(UserError, match="quantization format 'qop' is not supported; allowed: qdq, qoperator"):
        quantize_int8_static(fp32, x, fmt="qop")


def test_power_of_two_scales_keep_the_network_and_every_scale_is_a_power_of_two() -> None:
    """Vitis AI's DPU scheme: per-tensor symmetric int8, each scale 2^k; biases re-quantized so
    the integer kernels stay consistent, and the outputs stay close to the float-scale file's."""
    from onnx import numpy_helper

    model, fp32, x = _fp32_model()
    float_scales = quantize_int8_static(fp32, x, per_channel=False, activations="int8")
    pof2 = quantize_int8_static(fp32, x, per_channel=False, activations="int8", scales="pof2")
    proto = onnx.load_from_string(pof2)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    scale_names = {n.input[1] for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    assert len(scale_names) > 20
    for name in scale_names:
        exponent = np.log2(inits[name].astype(np.float64))
        assert np.allclose(exponent, np.round(exponent)), name
    assert "power of two" in {p.key: p.value for p in proto.metadata_props}["hwnas.quantization"]
    ref = session(fp32, threads=1).run(None, {"input": x})[0]
    base = session(float_scales, threads=1).run(None, {"input": x})[0]
    out = session(pof2, threads=1).run(None, {"input": x})[0]
    assert np.corrcoef(ref.ravel(), out.ravel())[0, 1] > 0.95
    assert (out.argmax(1) == ref.argmax(1)).mean() >= (base.argmax(1) == ref.argmax(1)).mean() - 0.15
    with pytest.raises(UserError, match="pof2 is Vitis AI's DPU scheme"):
        quantize_int8_static(fp32, x, scales="pof2")  # per-channel uint8 is not the DPU's scheme
