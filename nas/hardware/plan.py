"""The ops a runtime executes for a layer table (:mod:`nas.cost.layers`), and the op-kind vocabulary
the latency model prices them by.

What a runtime executes is not the layer table itself: :func:`plan` turns the table into the ops
the runtime runs. With ``runtime: generic`` that is one op per layer (activations fused when
``fuses_activations``). With ``runtime: onnxruntime`` it follows onnxruntime's CPU graph
optimizer, whose rules were read off its optimized graphs (onnxruntime 1.31; on 270 networks of
every block type the simulated op counts, layouts and reorders match the optimized graph exactly):

- an activation after a conv is fused into it, a ReLU after a linear layer into its Gemm (not a
  hard-swish); an add after a conv is fused into it (the conv
  adds the other operand), and so is an activation after that add (in NCHWc only a ReLU: a ReLU6
  after a blocked conv and add runs on its own);
- with ``layout_block`` > 0 (onnxruntime's NCHWc on x86: 16 channels per block with AVX-512,
  8 with AVX2) convs run in the blocked layout: dense ones when their input channels are fewer
  than a block (they read the plain layout) or divide by 4; depthwise ones when their channels
  divide by 4; grouped ones when both channel counts per group divide into blocks. Pools run
  blocked when their channels divide into blocks; a concat when all its inputs are blocked and
  their channels divide into blocks; an add when all its inputs are blocked. Everything else
  (unfused activations, SE gating, shuffle, slice, flatten, linear) runs plain. Blocked ops
  compute their padding channels and have their own efficiency and overhead
  (``<kind>_blocked``); each change of layout is a reorder op (kind ``reorder``, keyed
  ``reorder_in`` or ``reorder_out``: its bytes plus its overhead).

>>> from nas.space.arch import parse
>>> from nas.cost.layers import layer_table
>>> len(plan(layer_table(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"))))
7
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from nas.cost.layers import Layer

COMPUTE_KINDS = ("conv", "pwconv", "gconv", "dwconv", "linear")
BLOCKABLE_KINDS = ("conv", "pwconv", "gconv", "dwconv")
BLOCKED_KINDS = tuple(f"{k}_blocked" for k in BLOCKABLE_KINDS)
DATA_KINDS = ("add", "mul", "concat", "shuffle", "slice", "avgpool", "maxpool", "gap")
FREE_KINDS = ("flatten",)
# Kinds that only models from outside the grammar have (``hwnas cost FILE.onnx``). No calibration
# network has them, so each is priced by the terms of the kind that does the same work: a MatMul
# of two activations is a GEMM like a linear layer; a norm or softmax reads and writes its tensor
# elementwise like a product; a transpose moves every element like a channel shuffle; a pad or
# resize writes a new tensor from its input like a concat. Devices list them in
# ``supported_kinds`` only where their toolchain runs them.
PRICED_AS = {"matmul": "linear", "norm": "mul", "softmax": "mul", "transpose": "shuffle", "pad": "concat",
             "resize": "concat"}
RUNTIMES = ("generic", "onnxruntime")
REORDER_KEYS = ("reorder_in", "reorder_out")  # into and out of the blocked layout
GRAMMAR_KINDS = COMPUTE_KINDS + DATA_KINDS + ("act",) + FREE_KINDS  # the kinds fits have terms for
ALL_KINDS = GRAMMAR_KINDS + tuple(PRICED_AS)
_CONVS = ("conv", "pwconv", "gconv", "dwconv")
_ALIGN = 4  # channel multiple onnxruntime's NCHWc reorders need
_FOLDED_ACTS = ("ReLU", "ReLU6")  # int8: clipping the quantized range is the activation


@dataclass(frozen=True)
class Op:
    """One op the runtime executes: ``key`` picks its efficiency or linear terms and its overhead
    (a compute kind, ``<kind>_blocked``, a data kind, ``act``, ``reorder_in``/``reorder_out``),
    ``kind`` its overhead where the key has none (the layer's kind, or ``reorder``)."""

    name: str
    kind: str
    key: str
    macs: float  # multiply-adds executed, padding channels included
    in_elems: int  # activation elements read (a fused add's operand included)
    out_elems: int
    weight_elems: int = 0
    groups: int = 1
    positions: int = 0  # output positions (height x width) of a conv

    @property
    def elems(self) -> int:
        """Elements read and written, weights included."""
        return self.in_elems + self.out_elems + self.weight_elems




def _pad(channels: int, block: int) -> int:
    return -(-channels // block) * block


def _op(layer: Layer, key: str | None = None, macs: float | None = None) -> Op:
    positions = layer.out_shape[2] * layer.out_shape[3] if len(layer.out_shape) == 4 else 1
    return Op(layer.name, layer.kind, key or PRICED_AS.get(layer.kind, layer.kind), float(layer.macs) if macs is None else macs,
              layer.in_elems, layer.out_elems, layer.weight_elems, layer.groups, positions)


def plan(layers: list[Layer], *, runtime: str = "generic", layout_block: int = 0,
         fuses_activations: bool = True, precision: str = "fp32") -> list[Op]:
    """The ops a runtime executes for ``layers``; see the module docstring."""
    if runtime == "generic":
        return [_op(l) for l in layers if l.kind not in FREE_KINDS and not (l.kind == "act" and fuses_activations)]
    if precision == "int8":
        return _onnxruntime_int8_plan(layers)
    return _onnxruntime_plan(layers, layout_block)


def _blocked_conv(layer: Layer, block: int) -> bool:
    cin, cout, g = layer.in_shape[1], layer.out_shape[1], layer.groups
    if layer.kind in ("conv", "pwconv"):
        return cin < block or cin % _ALIGN == 0
    if layer.kind == "dwconv":
        return cout % _ALIGN == 0
    return (cin // g) % block == 0 and (cout // g) % block == 0  # gconv


class _Layouts:
    """Which of two layouts each tensor is in (True: blocked / NHWC), and the reorder ops a plan
    adds when an op reads a tensor in the other one (once per tensor and layout)."""

    def __init__(self, layers: list[Layer], ops: list[Op]) -> None:
        self.by_name = {l.name: l for l in layers}
        self.ops = ops
        self.on: dict[str, bool] = {"input": False}
        self.converted: dict[str, set[bool]] = {}

    def __getitem__(self, name: str) -> bool:
        return self.on.get(name, False)

    def __setitem__(self, name: str, on: bool) -> None:
        self.on[name] = on

    def need(self, name: str, want: bool, reader: Layer) -> None:
        if self[name] == want or want in self.converted.setdefault(name, set()):
            return
        self.converted[name].add(want)
        src = self.by_name.get(name)
        key = "reorder_in" if want else "reorder_out"  # into / out of the blocked (NHWC) layout
        elems = src.out_elems if src is not None else reader.in_elems
        self.ops.append(Op(f"{key} {name} for {reader.name}", "reorder", key, 0.0, elems, elems))


def _conv_op(l: Layer, block: int) -> tuple[Op, bool, bool]:
    """A conv's planned op (blocked ones compute their padding channels), whether it runs blocked,
    and whether it reads its input in the plain layout (dense convs with fewer channels than a block)."""
    on = block > 0 and _blocked_conv(l, block)
    reads_plain = on and l.kind in ("conv", "pwconv") and l.in_shape[1] < block
    macs = float(l.macs)
    if on:
        cin, cout = l.in_shape[1], l.out_shape[1]
        macs *= _pad(cout, block) / cout
        if l.kind in ("conv", "pwconv") and not reads_plain:
            macs *= _pad(cin, block) / cin
    return _op(l, f"{l.kind}_blocked" if on else l.kind, macs), on, reads_plain


def _runs_blocked(l: Layer, block: int, blocked: _Layouts) -> bool:
    """Whether a data op (not fused into a conv) runs in the blocked layout."""
    if block <= 0:
        return False
    if l.kind == "add":
        return all(blocked[i] for i in l.inputs)
    if l.kind == "concat":
        return all(blocked[i] and blocked.by_name[i].out_shape[1] % block == 0
                   for i in l.inputs if i in blocked.by_name)
    if l.kind in ("gap", "avgpool", "maxpool"):
        return l.in_shape[1] % block == 0
    return False  # act, mul, shuffle, slice, linear: plain


def _onnxruntime_plan(layers: list[Layer], block: int) -> list[Op]:
    ops: list[Op] = []
    blocked = _Layouts(layers, ops)  # True: NCHWc
    need = blocked.need
    by_name = blocked.by_name
    consumers: dict[str, list[Layer]] = {}
    for l in layers:
        for i in l.inputs:
            consumers.setdefault(i, []).append(l)

    def sole_conv(name: str) -> bool:
        src = by_name.get(name)
        return src is not None and src.kind in _CONVS and len(consumers.get(name, [])) == 1

    absorbed: set[str] = set()  # activations executed inside a conv that absorbed an add
    index: dict[str, int] = {}  # layer name -> its op

    for l in layers:
        src = l.inputs[0] if l.inputs else "input"
        if l.name in absorbed or l.kind in FREE_KINDS:
            if l.kind in FREE_KINDS and block:
                need(src, False, l)
            blocked[l.name] = blocked[src] if l.name in absorbed else False
            continue
        if l.kind == "act" and (sole_conv(src) or (l.op == "ReLU" and src in by_name and by_name[src].kind == "linear"
                                                   and len(consumers.get(src, [])) == 1)):
            blocked[l.name] = blocked[src]  # fused into the conv (into a linear layer's Gemm: ReLU only)
            continue
        if l.kind in _CONVS:
            op, on, reads_plain = _conv_op(l, block)
            need(src, on and not reads_plain, l)
            index[l.name] = len(ops)
            ops.append(op)
            blocked[l.name] = on
            continue
        if l.kind == "add":
            conv = next((i for i in l.inputs if sole_conv(i)), None)
            other = next((i for i in l.inputs if i != conv), None)
            if conv is not None and other is not None and (not blocked[conv] or blocked[other]):
                need(other, blocked[conv], l)  # the conv reads the other operand and adds it
                fused = ops[index[conv]]
                ops[index[conv]] = replace(fused, in_elems=fused.in_elems + l.out_elems)
                blocked[l.name] = blocked[conv]
                after = consumers.get(l.name, [])
                # an activation after the add runs inside the conv too: any of them in the plain
                # layout, only ReLU in NCHWc (a ReLU6 after a blocked conv + add runs on its own)
                if len(after) == 1 and after[0].kind == "act" and (not blocked[conv] or after[0].op == "ReLU"):
                    absorbed.add(after[0].name)
                continue
        on = _runs_blocked(l, block, blocked)
        for i in l.inputs:
            need(i, on, l)
        ops.append(_op(l))
        blocked[l.name] = on
    return ops


def _onnxruntime_int8_plan(layers: list[Layer]) -> list[Op]:
    """onnxruntime's int8 (QDQ) graph: every conv runs in NHWC; ReLU-type activations fold into the
    output quantization of the op before, others (hard-swish, hard-sigmoid) run as float ops
    between a dequantize and a quantize (``act``); adds, concats and products run
    in NHWC when all their inputs are, pools in their input's layout; shuffle, slice, flatten and
    linear in NCHW.
    Each change of layout is a transpose (``reorder_in``: to NHWC, ``reorder_out``: back)."""
    ops: list[Op] = []
    nhwc = _Layouts(layers, ops)

    for l in layers:
        src = l.inputs[0] if l.inputs else "input"
        if l.kind == "act":
            nhwc[l.name] = nhwc[src]  # elementwise: either layout
            if l.op not in _FOLDED_ACTS:
                ops.append(_op(l))
            continue
        if l.kind in _CONVS:
            on = True
        elif l.kind in ("gap", "avgpool", "maxpool"):
            on = nhwc[src]
        elif l.kind in ("add", "concat", "mul"):
            on = all(nhwc[i] for i in l.inputs)
        else:  # shuffle, slice, flatten, linear
            on = False
        for i in l.inputs or ("input",):
            nhwc.need(i, on, l)
        nhwc[l.name] = on
        if l.kind not in FREE_KINDS:
            ops.append(_op(l))
    return ops

