"""Post-training quantization of an exported ONNX model with ``onnxruntime.quantization``:
static int8 (calibrated on real inputs), dynamic int8, and fp16.

Static int8 comes in two formats. ``qdq`` (the default) is the portable one: standard
QuantizeLinear/DequantizeLinear pairs around float ops, which onnxruntime, TensorRT and the
vendor compilers fuse into integer kernels. ``qoperator`` writes onnxruntime's integer operators
(QLinearConv, QLinearAdd, ...) directly: no bias scales or zero points are stored, so the file is
smaller, but only onnxruntime runs it. Activations are uint8 by default: onnxruntime's x86 kernels
are U8S8 (uint8 activations, int8 weights), and with int8 activations it leaves convs that share
an input and every residual add in float, which made int8 slower than fp32 on this host.

Every function takes and returns serialized ONNX bytes, keeps the ``hwnas.*`` metadata and sets
``hwnas.precision`` (and ``hwnas.quantization``, saying how) on the result, which must pass
``onnx.checker``.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.transformers.float16 import convert_float_to_float16

from nas.core.errors import UserError
from nas.core.vocab import QUANTIZE_MODES as MODES
from nas.core.vocab import QUANTIZE_SCALES as SCALES

log = logging.getLogger(__name__)

CALIBRATION_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                       "percentile": CalibrationMethod.Percentile}
FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
ACTIVATION_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}


class _Batches(CalibrationDataReader):
    """Feeds preprocessed NCHW float32 calibration inputs in batches of ``batch``."""

    def __init__(self, name: str, inputs: np.ndarray, batch: int) -> None:
        self._iter: Iterator[dict[str, np.ndarray]] = iter(
            [{name: inputs[i:i + batch]} for i in range(0, len(inputs), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def _with_metadata(proto: onnx.ModelProto, source: onnx.ModelProto, precision: str, how: str) -> bytes:
    props = {p.key: p.value for p in source.metadata_props}
    props.update({"hwnas.precision": precision, "hwnas.quantization": how})
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    del proto.graph.value_info[:]  # shape annotations of the pre-pass: redundant, and a third of a small file
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _preprocessed(model: bytes, folder: Path) -> Path:
    """onnxruntime's recommended pre-pass (shape inference, graph optimization) before quantizing."""
    src, out = folder / "fp32.onnx", folder / "pre.onnx"
    src.write_bytes(model)
    quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    return out


def quantize_int8_static(model: bytes, calibration_inputs: np.ndarray, *, method: str = "minmax",
                         per_channel: bool = True, fmt: str = "qdq", activations: str = "uint8",
                         batch: int = 32, scales: str = "float") -> bytes:
    """Static int8: symmetric int8 weights (per output channel by default) and asymmetric 8-bit
    activations whose ranges come from running ``calibration_inputs`` (preprocessed model inputs,
    real training images for an accurate model) through the float model; ``fmt`` and
    ``activations`` as in :data:`FORMATS` and :data:`ACTIVATION_TYPES`."""
    if method not in CALIBRATION_METHODS:
        raise UserError(f"calibration method {method!r} is not supported; allowed: {', '.join(CALIBRATION_METHODS)}")
    if fmt not in FORMATS:
        raise UserError(f"quantization format {fmt!r} is not supported; allowed: {', '.join(FORMATS)}")
    if activations not in ACTIVATION_TYPES:
        raise UserError(f"activation type {activations!r} is not supported; allowed: {', '.join(ACTIVATION_TYPES)}")
    if len(calibration_inputs) == 0:
        raise UserError("static int8 quantization needs at least one calibration input")
    if scales not in SCALES:
        raise UserError(f"quantization scales {scales!r} not supported; allowed: {', '.join(SCALES)}")
    if scales == "pof2" and (fmt != "qdq" or per_channel or activations != "int8"):
        raise UserError("quantize.scales: pof2 is Vitis AI's DPU scheme and needs format: qdq, per_channel: false, "
                        "activations: int8")
    source = onnx.load_from_string(model)
    name = source.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pre = _preprocessed(model, folder)
        out = folder / "int8.onnx"
        extra: dict[str, object] = {"CalibMovingAverage": False} if method == "minmax" else {}
        if fmt == "qdq":  # one DQ per consumer: onnxruntime fuses a DQ into a kernel only if it has one consumer
            extra["DedicatedQDQPair"] = True
        quantize_static(str(pre), str(out), _Batches(name, calibration_inputs.astype(np.float32), batch),
                        quant_format=FORMATS[fmt], per_channel=per_channel,
                        activation_type=ACTIVATION_TYPES[activations], weight_type=QuantType.QInt8,
                        calibrate_method=CALIBRATION_METHODS[method],
                        extra_options={**extra, "ActivationSymmetric": scales == "pof2", "WeightSymmetric": True})
        proto = onnx.load(str(out))
    how = (f"static int8, {fmt}, {'per-channel' if per_channel else 'per-tensor'} symmetric int8 weights, "
           f"{'symmetric' if scales == 'pof2' else 'asymmetric'} {activations} activations calibrated ({method}) on "
           f"{len(calibration_inputs)} inputs, onnxruntime.quantization")
    if scales == "pof2":
        power_of_two_scales(proto)
        how += ("; every scale then rounded to a power of two (activations: nearest in log2; weights: the lower-error "
                "of the two neighbours, re-quantized; biases re-quantized at input x weight scale), as Vitis AI's "
                "DPU needs")
    return _with_metadata(proto, source, "int8", how)


def _pof2(value: np.ndarray) -> np.ndarray:
    return np.power(2.0, np.round(np.log2(value))).astype(np.float32)


def power_of_two_scales(proto: onnx.ModelProto) -> None:
    """Round every scale of a per-tensor symmetric QDQ model to a power of two, in place: what a
    Vitis AI DPU computes with (shifts instead of multipliers). Activation scales go to the nearest
    power of two (in log2); each weight tensor takes whichever neighbouring power of two
    reconstructs it with less error and is re-quantized; int32 biases are re-quantized at the new
    input scale x weight scale, as the integer kernels assume."""
    inits = {t.name: t for t in proto.graph.initializer}
    values = {name: numpy_helper.to_array(t) for name, t in inits.items()}
    producer = {out: node for node in proto.graph.node for out in node.output}
    dq_nodes = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    const_dq = [n for n in dq_nodes if n.input[0] in inits]
    new_scale: dict[str, np.ndarray] = {}
    biases = []
    for node in const_dq:  # weights (int8) now; biases (int32) once their inputs' scales are known
        q, scale = values[node.input[0]], values[node.input[1]]
        if q.dtype == np.int32:
            biases.append(node)
            continue
        w = q.astype(np.float32) * scale
        lo = np.power(2.0, np.floor(np.log2(scale))).astype(np.float32)
        candidates = [lo, lo * 2]
        errors = [float(np.square(np.clip(np.round(w / c), -127, 127) * c - w).sum()) for c in candidates]
        best = candidates[int(np.argmin(errors))]
        new_scale[node.input[1]] = best
        values[node.input[0]] = np.clip(np.round(w / best), -127, 127).astype(q.dtype)
    for name in {n.input[1] for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}:
        if name not in new_scale:  # activations
            new_scale[name] = _pof2(values[name])
    for node in biases:
        consumer = next(n for n in proto.graph.node if node.output[0] in n.input)
        x_dq, w_dq = producer.get(consumer.input[0]), producer.get(consumer.input[1])
        if x_dq is None or w_dq is None or x_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
            raise ValueError(f"bias {node.input[0]} of {consumer.name}: inputs not dequantized; cannot re-scale")
        b = values[node.input[0]].astype(np.float64) * values[node.input[1]]
        scale = (new_scale[x_dq.input[1]] * new_scale[w_dq.input[1]]).astype(np.float32)
        new_scale[node.input[1]] = scale
        values[node.input[0]] = np.round(b / scale).astype(np.int32)
    for name, value in values.items():
        if name in new_scale:
            value = new_scale[name].astype(values[name].dtype).reshape(values[name].shape)
        inits[name].CopyFrom(numpy_helper.from_array(value, name))


def quantize_int8_dynamic(model: bytes) -> bytes:
    """Dynamic int8: weights stored int8, activation ranges computed at run time (no calibration)."""
    source = onnx.load_from_string(model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pre = _preprocessed(model, folder)
        out = folder / "dyn.onnx"
        quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8)
        proto = onnx.load(str(out))
    return _with_metadata(proto, source, "int8", "dynamic int8 (weights int8, activations quantized at run time)")


def convert_fp16(model: bytes) -> bytes:
    """fp16 weights and compute, fp32 inputs and outputs (casts at the edges)."""

    source = onnx.load_from_string(model)
    proto = convert_float_to_float16(onnx.load_from_string(model), keep_io_types=True)
    _sort_topologically(proto.graph)  # the converter appends its input casts after their consumers
    return _with_metadata(proto, source, "fp16", "fp16 weights and activations, fp32 model inputs and outputs")


def _sort_topologically(graph: onnx.GraphProto) -> None:
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an undefined input")
        for node in ready:
            available.update(node.output)
        ordered += ready
        pending = [n for n in pending if not all(name in available for name in n.output)]
    del graph.node[:]
    graph.node.extend(ordered)


def quantize(model: bytes, mode: str, *, calibration_inputs: np.ndarray | None = None, method: str = "minmax",
             per_channel: bool = True, fmt: str = "qdq", activations: str = "uint8", scales: str = "float") -> bytes:
    """One entry point for the modes in :data:`MODES`."""
    if mode == "static":
        if calibration_inputs is None:
            raise UserError("static int8 quantization needs calibration inputs")
        return quantize_int8_static(model, calibration_inputs, method=method, per_channel=per_channel, fmt=fmt,
                                    activations=activations, scales=scales)
    if mode == "dynamic":
        return quantize_int8_dynamic(model)
    if mode == "fp16":
        return convert_fp16(model)
    raise UserError(f"quantization mode {mode!r} is not supported; allowed: {', '.join(MODES)}")
