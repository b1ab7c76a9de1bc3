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

log = logging.getLogger(__name__)

CALIBRATION_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                       "percentile": CalibrationMethod.Percentile}
MODES = ("static", "dynamic", "fp16")
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
                         batch: int = 32) -> bytes:
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
                        extra_options={**extra, "ActivationSymmetric": False, "WeightSymmetric": True})
        proto = onnx.load(str(out))
    how = (f"static int8, {fmt}, {'per-channel' if per_channel else 'per-tensor'} symmetric int8 weights, "
           f"asymmetric {activations} activations calibrated ({method}) on {len(calibration_inputs)} inputs, "
           "onnxruntime.quantization")
    return _with_metadata(proto, source, "int8", how)


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
             per_channel: bool = True, fmt: str = "qdq", activations: str = "uint8") -> bytes:
    """One entry point for the modes in :data:`MODES`."""
    if mode == "static":
        if calibration_inputs is None:
            raise UserError("static int8 quantization needs calibration inputs")
        return quantize_int8_static(model, calibration_inputs, method=method, per_channel=per_channel, fmt=fmt,
                                    activations=activations)
    if mode == "dynamic":
        return quantize_int8_dynamic(model)
    if mode == "fp16":
        return convert_fp16(model)
    raise UserError(f"quantization mode {mode!r} is not supported; allowed: {', '.join(MODES)}")
