"""LiteRT (TFLite) export of a trained network, fp32 or full-integer int8, with the ONNX files'
metadata, and the file's accuracy and host latency measured by the LiteRT interpreter.

Conversion is litert-torch's (PyTorch -> LiteRT directly, no TensorFlow). int8 is full-integer
static (int8 weights and activations, int32 biases, int8 input and output: the form the Edge TPU
compiler takes) by one of two routes, :mod:`nas.deploy.tflite_int8`. The input is NHWC with a
static batch of 1, as the Edge TPU needs.

litert-torch and ai-edge-litert are the optional extra ``hwnas[tflite]``; without it these
functions raise a one-line :class:`~nas.core.errors.UserError` saying what to install.
"""
from __future__ import annotations

import copy
import json
import logging
import statistics
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.core.errors import UserError
from nas.data.splits import Preprocess, to_tensor
from nas.deploy import _optional
from nas.deploy.contract import CONTRACT_KEY, contract_json
from nas.deploy.export import DeployInfo
from nas.deploy.host_latency import LatencyMeasurement
from nas.deploy.tflite_int8 import INT8_ROUTES, aiq_int8, pt2e_int8
from nas.space.builder import fuse_bn

log = logging.getLogger(__name__)

TFLITE_PRECISIONS = ("fp32", "int8")
INSTALL_HINT = "pip install 'hwnas[tflite]' (litert-torch, ai-edge-litert)"


def available() -> bool:
    """Whether the optional LiteRT packages are installed."""
    return _optional.available()


def require() -> None:
    if not available():
        raise UserError(f"LiteRT (TFLite) export needs the optional extra: {INSTALL_HINT}")


def runtime_version() -> str:
    return f"LiteRT {version('ai-edge-litert')}"


def converter_version() -> str:
    return f"litert-torch {version('litert-torch')}"


class _NHWC(nn.Module):
    """The network with an NHWC input, as TFLite models take it."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2))


def nhwc_inputs(images: np.ndarray, preprocess: Preprocess, resolution: int) -> np.ndarray:
    """uint8 NHWC images -> the float32 NHWC tensor the .tflite file takes (the same recipe as ONNX)."""
    return to_tensor(images, preprocess, resolution).permute(0, 2, 3, 1).contiguous().numpy()


def _quiet() -> None:
    """litert-torch prints progress lines to stdout (a rich console): keep them out of hwnas's output."""
    _optional.load("litert_torch.progress").console.quiet = True


def to_tflite(model: nn.Module, info: DeployInfo, *, precision: str = "fp32",
              calibration: np.ndarray | None = None, preprocess: Preprocess | None = None, route: str = "aiq",
              per_channel: bool = True) -> bytes:
    """Convert ``model`` (BatchNorm folded) to a .tflite file's bytes with ``info`` as metadata.
    ``int8`` needs ``calibration`` (uint8 NHWC training images) and their ``preprocess``, and
    takes ``route`` (:data:`~nas.deploy.tflite_int8.INT8_ROUTES`) and ``per_channel`` weights."""
    require()
    if precision not in TFLITE_PRECISIONS:
        raise UserError(f"TFLite precision {precision!r} not allowed; allowed: {', '.join(TFLITE_PRECISIONS)}")
    _quiet()
    _, c, h, w = info.input_shape
    net = _NHWC(fuse_bn(copy.deepcopy(model).cpu().eval())).eval()
    sample = (torch.zeros(1, h, w, c),)
    with warnings.catch_warnings():  # torch's pytree deprecation notes, once per exported tensor
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
        data = _convert(net, sample, precision, calibration, preprocess, h, route=route, per_channel=per_channel)
    it = interpreter(data)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    contract = info.contract(layout="NHWC", batch=1, input_quantization=_quantization(inp),
                             output_quantization=_quantization(out))
    dtype = contract["input"]["dtype"]
    return add_metadata(data, {**info.metadata(), "hwnas.precision": precision,
                               "hwnas.input_shape": json.dumps([1, h, w, c]),
                               "hwnas.input_layout": f"NHWC, batch 1, {dtype}: see {CONTRACT_KEY}",
                               CONTRACT_KEY: contract_json(contract)})


def _quantization(detail: dict[str, Any]) -> tuple[float, int, str] | None:
    """(scale, zero point, dtype) of an integer input/output tensor; None for float."""
    if detail["dtype"] == np.float32:
        return None
    scale, zero = detail["quantization"]
    return float(scale), int(zero), np.dtype(detail["dtype"]).name


def _convert(net: nn.Module, sample: tuple[torch.Tensor], precision: str, calibration: np.ndarray | None,
             preprocess: Preprocess | None, resolution: int, *, route: str, per_channel: bool) -> bytes:
    """fp32: litert-torch's conversion. int8: ``route`` on ``calibration`` (uint8 training images)."""
    if precision == "int8" and route not in INT8_ROUTES:
        raise UserError(f"int8 TFLite route {route!r} not allowed; allowed: {', '.join(INT8_ROUTES)}")
    if precision == "int8" and (calibration is None or preprocess is None or not len(calibration)):
        raise ValueError("int8 TFLite export needs calibration images and their preprocessing")
    if precision == "int8" and route == "pt2e":
        assert calibration is not None and preprocess is not None
        return pt2e_int8(net, sample, nhwc_inputs(calibration, preprocess, resolution), per_channel=per_channel)
    edge = _optional.load("litert_torch").convert(net, sample)
    fp32: bytes = edge.model_content() if hasattr(edge, "model_content") else _bytes_of(edge)
    if precision == "fp32":
        return fp32
    assert calibration is not None and preprocess is not None
    name = next(iter(interpreter(fp32).get_signature_runner().get_input_details()))
    return aiq_int8(fp32, nhwc_inputs(calibration, preprocess, resolution), name, per_channel=per_channel)


def _bytes_of(edge: Any) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        edge.export(str(path))
        return path.read_bytes()


def add_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    """The .tflite flatbuffer with ``metadata`` as named metadata entries (TFLite's own
    ``Model.metadata``: a name and a buffer each), replacing entries of the same name."""
    schema = _optional.load("ai_edge_litert.schema_py_generated")
    flatbuffers = _optional.load("flatbuffers")
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    model.buffers = model.buffers or []
    kept = [m for m in (model.metadata or []) if m.name.decode() not in metadata]
    for name, value in metadata.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(value.encode(), dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        kept.append(entry)
    model.metadata = kept
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_metadata(model: str | Path | bytes) -> dict[str, str]:
    """The ``hwnas.*`` (and any other) metadata entries of a .tflite file."""
    require()
    schema = _optional.load("ai_edge_litert.schema_py_generated")
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    m = schema.Model.GetRootAsModel(data, 0)
    out = {}
    for i in range(m.MetadataLength()):
        entry = m.Metadata(i)
        buf = m.Buffers(entry.Buffer()).DataAsNumpy()
        out[entry.Name().decode()] = bytes(buf).decode() if not isinstance(buf, int) else ""
    return out


def interpreter(model: str | Path | bytes, *, threads: int = 1) -> Any:
    """The LiteRT interpreter (with its default XNNPACK CPU delegate) on ``model``."""
    require()
    Interpreter = _optional.load("ai_edge_litert.interpreter").Interpreter
    content = model if isinstance(model, bytes) else Path(model).read_bytes()
    with _optional.native_stderr_to_log():  # LiteRT announces its XNNPACK delegate on stderr
        it = Interpreter(model_content=content, num_threads=threads)
        it.allocate_tensors()
    return it


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float input -> the input tensor's dtype with its scale and zero point (as is for float)."""
    dtype = detail["dtype"]
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def tflite_logits(model: str | Path | bytes, x: np.ndarray, *, threads: int = 2) -> np.ndarray:
    """Dequantized outputs of the file on float NHWC inputs ``x``, one image at a time (the file's
    static batch of 1)."""
    it = interpreter(model, threads=threads)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for i in range(len(x)):
        it.set_tensor(inp["index"], quantize_input(x[i:i + 1], inp))
        it.invoke()
        y = it.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        rows.append(y[0])
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def tflite_accuracy(model: str | Path | bytes, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess,
                    resolution: int, threads: int = 2) -> float:
    """Top-1 accuracy of a .tflite file run by the LiteRT interpreter on uint8 NHWC images."""
    correct = 0
    for start in range(0, len(labels), 1000):
        x = nhwc_inputs(images[start:start + 1000], preprocess, resolution)
        correct += int((tflite_logits(model, x, threads=threads).argmax(1) == labels[start:start + 1000]).sum())
    return correct / max(1, len(labels))


def measure_tflite_latency(model: str | Path | bytes, *, threads: int = 1, warmup: int = 10, repeats: int = 200,
                           seed: int = 0) -> LatencyMeasurement:
    """Median wall time of one inference of the file in the LiteRT interpreter (XNNPACK delegate)."""
    it = interpreter(model, threads=threads)
    inp = it.get_input_details()[0]
    x = quantize_input(np.random.default_rng(seed).standard_normal(inp["shape"]).astype(np.float32), inp)
    for _ in range(warmup):
        it.set_tensor(inp["index"], x)
        it.invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        it.set_tensor(inp["index"], x)
        it.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return LatencyMeasurement(median_ms=statistics.median(times), p90_ms=times[int(0.9 * (len(times) - 1))],
                              threads=threads, repeats=repeats, warmup=warmup,
                              runtime=f"{runtime_version()} interpreter (XNNPACK delegate)")
