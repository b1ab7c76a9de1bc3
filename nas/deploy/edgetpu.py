"""Edge TPU readiness of an int8 .tflite file: does every op map to the Edge TPU?

The Coral compiler (``edgetpu_compiler``, x86-64 Linux only, not installable here) maps a prefix of
the graph to one Edge TPU custom op; the first op it cannot map, and every op after it, run on the
host CPU. This check reads the file's flatbuffer and applies the compiler's documented rules
(coral.ai "TensorFlow models on the Edge TPU", operation table and requirements; see
``DEVICES.md``): int8 (or uint8) tensors throughout with int32 biases, static shapes with batch 1,
at most the 3 innermost dimensions above 1, and each op type with its limits. It names each op that
would fall back to the CPU and why. It is a check of documented rules, not the compiler: the
compiler can still leave an op on the CPU for reasons it does not document (e.g. "some large
reshapes", resize precision), so the printed ``edgetpu_compiler -s`` command gives the final word.

>>> Readiness(ops=(), problems=()).ready
True
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.deploy import _optional
from nas.deploy.tflite import require

# The compiler's mapped ops with no limits of their own (the operation table's first row).
_FREE = {"ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1",
         "L2_NORMALIZATION", "SLICE", "SPACE_TO_DEPTH", "SPLIT", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE",
         "SUM", "TRANSPOSE_CONV", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM"}
_NO_FUSED_ACTIVATION = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"}
_NOT_ALONG_BATCH = {"PAD", "PADV2", "PACK", "REDUCE_MAX", "REDUCE_MIN"}
_CHECKED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN", "PRELU", "SOFTMAX", "STRIDED_SLICE",
            "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"} | _NO_FUSED_ACTIVATION | _NOT_ALONG_BATCH
MAPPED_OPS = frozenset(_FREE | _CHECKED)
_ALLOWED_DTYPES = {"INT8", "UINT8", "INT32"}  # int32: biases and shape operands
SOFTMAX_MAX_ELEMENTS = 16_000


@dataclass(frozen=True)
class OpCheck:
    """One op of the graph, in execution order."""

    index: int
    op: str
    on_tpu: bool
    reason: str = ""  # why it runs on the CPU (empty when mapped)


@dataclass(frozen=True)
class Readiness:
    """The file's verdict: ``ready`` when every op maps and nothing in the file bars compilation."""

    ops: tuple[OpCheck, ...]
    problems: tuple[str, ...]  # whole-file problems (float tensors, dynamic shapes, ...)

    @property
    def cpu_ops(self) -> tuple[OpCheck, ...]:
        return tuple(o for o in self.ops if not o.on_tpu)

    @property
    def ready(self) -> bool:
        return not self.problems and not self.cpu_ops

    def summary(self) -> str:
        if self.ready:
            return f"Edge TPU ready: all {len(self.ops)} ops map to the Edge TPU (int8 throughout, static shapes)"
        parts = list(self.problems)
        cpu = self.cpu_ops
        if cpu:
            first = cpu[0]
            parts.append(f"{len(cpu)} of {len(self.ops)} ops would run on the CPU, from op {first.index} "
                         f"{first.op} ({first.reason}) on")
        return "NOT Edge TPU ready: " + "; ".join(parts)

    def to_attrs(self) -> dict[str, Any]:
        """The trial record's fields."""
        cpu = self.cpu_ops
        return {"edgetpu_ready": self.ready, "edgetpu_ops_mapped": len(self.ops) - len(cpu),
                "edgetpu_ops_total": len(self.ops),
                "edgetpu_cpu_ops": "; ".join(f"{o.index}:{o.op} ({o.reason})" for o in cpu),
                "edgetpu_problems": "; ".join(self.problems), "edgetpu_summary": self.summary()}


def compiler_command(model_path: str | Path, out_dir: str | Path | None = None) -> str:
    """The command the user runs on an x86-64 Linux machine with the Coral compiler installed."""
    path = Path(model_path)
    out = Path(out_dir) if out_dir is not None else path.parent
    return f"edgetpu_compiler -s -o {shlex.quote(str(out))} {shlex.quote(str(path))}"


class _Graph:
    """The flatbuffer of a .tflite file, read with LiteRT's generated schema."""

    def __init__(self, data: bytes) -> None:
        require()
        schema = _optional.load("ai_edge_litert.schema_py_generated")
        self.schema = schema
        self.model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))
        self.op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        self.act_names = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
        self.graph = self.model.subgraphs[0]

    def op_name(self, op: Any) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        if builtin == self.schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
            return f"CUSTOM:{custom}"
        return str(self.op_names.get(builtin, f"BUILTIN_{builtin}"))

    def shape(self, index: int) -> list[int]:
        shape = self.graph.tensors[index].shape
        return [int(d) for d in shape] if shape is not None else []

    def is_constant(self, index: int) -> bool:
        """Whether the tensor holds data in the file (weights, biases, axes) rather than an activation."""
        tensor = self.graph.tensors[index]
        if tensor.buffer >= len(self.model.buffers):
            return False
        data = self.model.buffers[tensor.buffer].data
        return data is not None and len(data) > 0 or bool(getattr(self.model.buffers[tensor.buffer], "size", 0))

    def raw(self, index: int) -> bytes:
        tensor = self.graph.tensors[index]
        data = self.model.buffers[tensor.buffer].data if tensor.buffer < len(self.model.buffers) else None
        return bytes(bytearray(data)) if data is not None else b""

    def constant(self, index: int) -> np.ndarray | None:
        """The value of a constant tensor (e.g. axes, paddings), or None for an activation."""
        tensor = self.graph.tensors[index]
        data = self.model.buffers[tensor.buffer].data if tensor.buffer < len(self.model.buffers) else None
        if data is None or len(data) == 0:
            return None
        dtype = {"INT32": np.int32, "INT64": np.int64}.get(self.type_names.get(tensor.type, ""), None)
        return np.frombuffer(bytes(bytearray(data)), dtype=dtype).reshape(self.shape(index)) if dtype else None

    def activation_name(self, options: Any) -> str:
        act = getattr(options, "fusedActivationFunction", 0) if options is not None else 0
        return str(self.act_names.get(act, act))


def _op_reason(g: _Graph, op: Any, name: str) -> str:
    """Why ``op`` does not map (empty when it does), by the compiler's documented limits."""
    if name not in MAPPED_OPS:
        return "not in the Edge TPU compiler's operation table"
    options = op.builtinOptions
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dw, dh = getattr(options, "dilationWFactor", 1), getattr(options, "dilationHFactor", 1)
        if dw != dh:
            return f"dilation {dh}x{dw}: x and y dilation must be equal"
    if name in _NO_FUSED_ACTIVATION and g.activation_name(options) != "NONE":
        return f"fused activation {g.activation_name(options)} not allowed on this op"
    if name == "FULLY_CONNECTED":
        if getattr(options, "weightsFormat", 0) != 0:
            return "weights not in the default format"
        out = g.shape(op.outputs[0])
        if sum(d > 1 for d in out[1:]) > 1:
            return f"output {out} is not 1-D"
    if name == "MEAN":
        axes_value = g.constant(op.inputs[1])
        rank = len(g.shape(op.inputs[0]))
        if axes_value is None:
            return "axes not constant"
        axes = {int(a) % rank for a in np.ravel(axes_value)}
        if 0 in axes:
            return "reduces over the batch"
        depth = g.shape(op.inputs[0])[-1]
        if rank - 1 in axes and depth % 4:
            return f"reduces over {depth} channels: a channel reduction needs a multiple of 4"
    if name in _NOT_ALONG_BATCH:
        if name in ("PAD", "PADV2"):
            pads = g.constant(op.inputs[1])
            if pads is None:
                return "paddings not constant"
            if np.any(pads[0] != 0):
                return "pads along the batch"
        elif name in ("REDUCE_MAX", "REDUCE_MIN"):
            reduce_axes = g.constant(op.inputs[1])
            if reduce_axes is None or 0 in {int(a) % len(g.shape(op.inputs[0])) for a in np.ravel(reduce_axes)}:
                return "reduces over the batch (or axes not constant)"
    if name == "PRELU" and len([d for d in g.shape(op.inputs[1]) if d > 1]) > 1:
        return "alpha is not 1-D"
    if name == "SOFTMAX":
        shape = g.shape(op.inputs[0])
        if sum(d > 1 for d in shape[1:]) > 1 or int(np.prod(shape)) > SOFTMAX_MAX_ELEMENTS:
            return f"input {shape}: Softmax maps 1-D inputs of at most {SOFTMAX_MAX_ELEMENTS} elements"
    if name == "STRIDED_SLICE":
        strides = g.constant(op.inputs[3])
        if strides is None or np.any(strides != 1):
            return "strides other than 1"
        if getattr(options, "ellipsisMask", 0) or getattr(options, "newAxisMask", 0):
            return "ellipsis or new-axis mask set"
    if name == "CONCATENATION":
        constants = [i for i in op.inputs if g.is_constant(i)]
        if constants and (len(op.inputs) != 2 or any(any(g.raw(i)) for i in constants)):
            return "constant input (allowed only as one of 2 inputs and all zeros)"
    return ""


def _file_problems(g: _Graph) -> list[str]:
    problems = []
    floats = sorted({g.type_names.get(t.type, str(t.type)) for t in g.graph.tensors
                     if g.type_names.get(t.type) not in _ALLOWED_DTYPES})
    if floats:
        bad = [t.name.decode() if isinstance(t.name, bytes) else str(t.name) for t in g.graph.tensors
               if g.type_names.get(t.type) not in _ALLOWED_DTYPES]
        problems.append(f"{len(bad)} tensor(s) of type {'/'.join(floats)} (e.g. {bad[0]}); the Edge TPU needs "
                        "int8 (or uint8) throughout: export with --precision int8")
    for t in g.graph.tensors:
        sig = t.shapeSignature if t.shapeSignature is not None else t.shape
        if sig is not None and any(int(d) < 0 for d in sig):
            problems.append("dynamic shapes (a -1 dimension); the Edge TPU compiler needs static shapes")
            break
    for index in list(g.graph.inputs) + list(g.graph.outputs):
        shape = g.shape(index)
        if shape and shape[0] != 1:
            problems.append(f"batch {shape[0]} on an input/output; the Edge TPU needs batch 1")
            break
    for t_index, t in enumerate(g.graph.tensors):
        shape = g.shape(t_index)
        if not g.is_constant(t_index) and len(shape) > 3 and any(d > 1 for d in shape[:-3]):
            problems.append(f"tensor {shape} has more than the 3 innermost dimensions above 1")
            break
    if len(g.model.subgraphs) > 1:
        problems.append(f"{len(g.model.subgraphs)} subgraphs; the Edge TPU compiler takes one")
    return problems


def check_edgetpu(model: str | Path | bytes) -> Readiness:
    """The readiness of a .tflite file (a path or its bytes) for the Edge TPU compiler."""
    data = Path(model).read_bytes() if isinstance(model, (str, Path)) else model
    g = _Graph(data)
    ops = []
    fallen = False  # the first unmappable op and every op after it run on the CPU
    for index, op in enumerate(g.graph.operators):
        name = g.op_name(op)
        reason = _op_reason(g, op, name)
        if reason:
            fallen = True
        elif fallen:
            reason = "after an op that runs on the CPU (the compiler maps only the graph's prefix)"
        ops.append(OpCheck(index, name, not reason, reason))
    return Readiness(tuple(ops), tuple(_file_problems(g)))
