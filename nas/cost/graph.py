"""The layer table (:mod:`nas.cost.layers`) of any ONNX graph, so that a model from outside the
grammar (a user's ONNX file, or a PyTorch module exported to ONNX) is priced by the same
per-layer models as searched networks.

The graph is first put in its deployed form: batch 1, every other dimension fixed, and
onnxruntime's basic optimizations applied (constant folding, so shape arithmetic disappears;
BatchNorm folded into the conv before it; Identity and Dropout removed), which changes no
result. Each remaining node becomes one :class:`~nas.cost.layers.Layer`, its kind read from
:data:`KINDS` (convs and matrix products by their operands). A node whose op has no kind is
refused by name (:class:`UnpricedOp`), never counted as zero.

MACs follow :mod:`nas.cost.costs`: convs, Gemm and MatMul (one multiply-add per output element
and reduced element); everything else moves bytes. Peak activation memory is the same liveness
count over the table: a tensor lives from the op that makes it to its last reader, activations,
reshapes and slices in place.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort

from nas.core.errors import UserError
from nas.core.vocab import BYTES_PER_ELEMENT
from nas.cost.costs import ModelCosts
from nas.cost.layers import Layer

log = logging.getLogger(__name__)

_ACTS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "PRelu", "Elu", "Selu",
         "Celu", "Softplus", "Softsign", "Erf", "Gelu", "Exp", "Log", "Sqrt", "Pow", "Neg", "Abs", "Reciprocal",
         "Cast", "Mish", "ThresholdedRelu", "Sign", "Floor", "Ceil", "Round")
# ONNX op -> layer kind, for ops whose kind does not depend on their operands
KINDS: dict[str, str] = {
    **{op: "act" for op in _ACTS},
    "Add": "add", "Sub": "add", "Sum": "add", "Max": "add", "Min": "add", "Mul": "mul", "Div": "mul", "Where": "mul",
    "Softmax": "softmax", "LogSoftmax": "softmax", "Hardmax": "softmax",
    "LayerNormalization": "norm", "InstanceNormalization": "norm", "GroupNormalization": "norm",
    "BatchNormalization": "norm", "LpNormalization": "norm", "MeanVarianceNormalization": "norm",
    "Transpose": "transpose", "DepthToSpace": "transpose", "SpaceToDepth": "transpose",
    "Reshape": "flatten", "Flatten": "flatten", "Squeeze": "flatten", "Unsqueeze": "flatten",
    "Slice": "slice", "Split": "slice", "Gather": "slice", "Concat": "concat",
    "MaxPool": "maxpool", "GlobalMaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "gap",
    "ReduceMean": "gap", "ReduceSum": "gap", "ReduceMax": "gap", "ReduceMin": "gap", "ReduceL2": "gap",
    "Pad": "pad", "Resize": "resize", "Upsample": "resize", "Expand": "resize", "Tile": "resize",
}
_SKIPPED = ("Identity", "Dropout")
_MATRIX = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_ALIASING = ("act", "flatten", "slice")
_LAYOUT_KINDS = ("flatten", "slice", "pad", "resize", "transpose", "concat")  # computed in place or as a view (see nas.cost.costs)


class UnpricedOp(UserError):
    """A node of a graph that the layer table has no kind for."""


@dataclass(frozen=True)
class GraphModel:
    """An ONNX graph in its deployed form (batch 1, folded) with the shape of every tensor."""

    proto: onnx.ModelProto
    input_name: str
    input_shape: tuple[int, ...]
    shapes: dict[str, tuple[int, ...]]
    constants: dict[str, int]  # initializer name -> elements


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]


def fixed_input(proto: onnx.ModelProto, input_shape: tuple[int, ...] | None = None) -> tuple[str, tuple[int, ...]]:
    """The graph's one input with its batch set to 1 and every dimension fixed (``input_shape``:
    C,H,W, where the file leaves them open). Sets the dims in ``proto``."""
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UserError(f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); hwnas prices "
                        "classifiers with one image input")
    value = inputs[0]
    dims = _dims(value)
    if input_shape is not None:
        if len(input_shape) != len(dims) - 1:
            raise UserError(f"--input-shape {','.join(map(str, input_shape))} has {len(input_shape)} dims; input "
                            f"{value.name!r} has {len(dims)} with the batch ({dims})")
        dims = [dims[0], *input_shape]
    dims[0] = 1
    open_dims = [i for i, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
    if open_dims:
        raise UserError(f"input {value.name!r} has open dimensions {dims}; give them with --input-shape C,H,W")
    shape = tuple(int(d) for d in dims)
    for d, n in zip(value.type.tensor_type.shape.dim, shape, strict=True):
        d.Clear()
        d.dim_value = n
    return value.name, shape


def folded(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The graph after onnxruntime's basic (semantics-preserving) optimizations; the graph itself
    where onnxruntime cannot load it (then constant shape arithmetic is skipped by hand)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        try:
            ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
            return onnx.load(options.optimized_model_filepath)
        except Exception as exc:  # noqa: BLE001 - any load failure: price the graph as written
            log.info("onnxruntime could not load the graph (%s); pricing it unfolded", str(exc).splitlines()[0])
            return proto


def graph_model(proto: onnx.ModelProto, input_shape: tuple[int, ...] | None = None) -> GraphModel:
    """``proto`` (left unchanged) in its deployed form with inferred shapes."""
    work = onnx.ModelProto()
    work.CopyFrom(proto)
    name, shape = fixed_input(work, input_shape)
    work = onnx.shape_inference.infer_shapes(folded(work), data_prop=True)
    shapes: dict[str, tuple[int, ...]] = {}
    for value in [*work.graph.input, *work.graph.value_info, *work.graph.output]:
        dims = _dims(value)
        if value.type.HasField("tensor_type") and all(isinstance(d, int) for d in dims):
            shapes[value.name] = tuple(int(d) for d in dims)
    constants = {i.name: math.prod(i.dims) for i in work.graph.initializer}
    return GraphModel(work, name, shape, shapes, constants)


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _matrix_layer(node: onnx.NodeProto, graph: GraphModel, acts: list[str], outs: tuple[int, ...]) -> Layer:
    shapes, consts = graph.shapes, graph.constants
    weights = sum(consts.get(i, 0) for i in node.input)
    ins = shapes[acts[0]]
    out_elems = math.prod(outs)
    if node.op_type in ("Conv", "ConvTranspose"):
        w_shape = _weight_shape(graph, node.input[1])
        g = int(_attr(node, "group", 1))  # type: ignore[call-overload]
        k = tuple(int(v) for v in w_shape[2:]) or (1,)
        strides = _attr(node, "strides", [1])
        stride = int(strides[0]) if isinstance(strides, list) and strides else 1
        cin, cout = ins[1], outs[1]
        if node.op_type == "ConvTranspose":
            macs, kind = math.prod(ins) * (cout // g) * math.prod(k), "conv"
        else:
            macs = out_elems * (cin // g) * math.prod(k)
            kind = ("dwconv" if g == cin == cout and g > 1 else "gconv" if g > 1 else
                    "pwconv" if math.prod(k) == 1 else "conv")
        return Layer(node.name, kind, ins, outs, macs, weights, math.prod(ins), out_elems, max(k), stride, g,
                     op=node.op_type)
    reduced = ins[-2] if node.op_type == "Gemm" and _attr(node, "transA", 0) else ins[-1]
    kind = "linear" if weights else "matmul"
    in_elems = math.prod(ins) if weights else sum(math.prod(shapes[a]) for a in acts)
    return Layer(node.name, kind, ins, outs, out_elems * reduced, weights, in_elems, out_elems, op=node.op_type)


def _weight_shape(graph: GraphModel, name: str) -> tuple[int, ...]:
    for i in graph.proto.graph.initializer:
        if i.name == name:
            return tuple(i.dims)
    if name in graph.shapes:
        return graph.shapes[name]
    raise UnpricedOp(f"conv weight {name!r} is computed in the graph, not stored; hwnas prices convs with stored "
                     "weights")


def _constant_nodes(graph: GraphModel) -> set[str]:
    """Outputs computable without the input (Constant nodes and shape arithmetic left unfolded)."""
    static = set(graph.constants)
    for node in graph.proto.graph.node:
        if node.op_type in ("Constant", "Shape", "Size", "ConstantOfShape") or all(
                i in static or not i for i in node.input):
            static.update(node.output)
    return static


def onnx_layers(graph: GraphModel) -> list[Layer]:
    """Ops of the deployed graph in execution order, batch 1 (see the module docstring)."""
    static = _constant_nodes(graph)
    producer: dict[str, str] = {graph.input_name: "input"}
    layers: list[Layer] = []
    for index, node in enumerate(graph.proto.graph.node):
        if all(o in static for o in node.output):
            continue
        node.name = node.name or f"{node.op_type}_{index}"
        acts = [i for i in node.input if i and i not in static]
        if not acts:
            continue
        sources = tuple(dict.fromkeys(producer.get(a, "input") for a in acts))
        if node.op_type in _SKIPPED:
            producer |= {o: sources[0] for o in node.output}
            continue
        missing = [t for t in [*acts, node.output[0]] if t not in graph.shapes]
        if missing:
            raise UnpricedOp(f"the shape of {missing[0]!r} (node {node.name!r}, op {node.op_type}) cannot be inferred; "
                             "hwnas needs static shapes at batch 1")
        outs = graph.shapes[node.output[0]]
        if node.op_type in _MATRIX:
            layer = _matrix_layer(node, graph, acts, outs)
        elif node.op_type in KINDS:
            layer = _data_layer(node, graph, acts, outs)
        else:
            raise UnpricedOp(f"op {node.op_type} (node {node.name!r}) has no layer kind, so no profile can price it; "
                             f"priced ops: {', '.join(sorted([*_MATRIX, *KINDS]))}")
        layers.append(dataclasses.replace(layer, inputs=sources))
        producer |= {o: layer.name for o in node.output}
    return layers


def _data_layer(node: onnx.NodeProto, graph: GraphModel, acts: list[str], outs: tuple[int, ...]) -> Layer:
    kind = KINDS[node.op_type]
    ins = graph.shapes[acts[0]]
    out_elems = sum(math.prod(graph.shapes.get(o, outs)) for o in node.output if o)
    k = _attr(node, "kernel_shape", [1])
    s = _attr(node, "strides", [1])
    kernel = int(k[0]) if isinstance(k, list) and k else 1
    stride = int(s[0]) if isinstance(s, list) and s else 1
    in_elems = sum(math.prod(graph.shapes[a]) for a in acts)
    # stored operands (a norm's scale and shift, a constant factor) are weights; shape and index
    # operands of data-movement ops are not
    weights = 0 if kind in _LAYOUT_KINDS else sum(graph.constants.get(i, 0) for i in node.input)
    return Layer(node.name, kind, ins, outs, 0, weights, in_elems, out_elems, kernel, stride, op=node.op_type)


def peak_activation_elements(layers: list[Layer]) -> int:
    """Largest number of activation elements live at once, in table order (see the module doc)."""
    buffer_of: dict[str, str] = {"input": "input"}
    size = {"input": layers[0].in_elems if layers else 0}
    start, end = {"input": 0}, {"input": 0}
    for step, layer in enumerate(layers, start=1):
        for i in layer.inputs:
            owner = buffer_of.get(i, "input")
            end[owner] = max(end[owner], step)
        if layer.kind in _ALIASING and layer.inputs:
            buffer_of[layer.name] = buffer_of.get(layer.inputs[0], "input")
            continue
        buffer_of[layer.name] = layer.name
        size[layer.name], start[layer.name], end[layer.name] = layer.out_elems, step, step
    if layers:  # the network's output is live at the end
        out = buffer_of[layers[-1].name]
        end[out] = len(layers) + 1
    return max((sum(n for b, n in size.items() if start[b] <= t <= end[b]) for t in range(len(layers) + 2)),
               default=0)


def graph_costs(graph: GraphModel, layers: list[Layer], *, precision: str, params: int | None = None) -> ModelCosts:
    """MACs, parameters (``params``: the source model's own count, e.g. a PyTorch module's with
    BatchNorm; else the graph's stored weights), weight and peak activation memory."""
    if precision not in BYTES_PER_ELEMENT:
        raise UserError(f"precision {precision!r} not allowed; allowed: {', '.join(BYTES_PER_ELEMENT)}")
    nbytes = BYTES_PER_ELEMENT[precision]
    weights = sum(l.weight_elems for l in layers)
    stored = sum(graph.constants.values())
    return ModelCosts(macs=sum(l.macs for l in layers), params=params if params is not None else stored,
                      weight_mb=weights * nbytes / 1e6,
                      peak_activation_mb=peak_activation_elements(layers) * nbytes / 1e6, precision=precision)

