"""Per-layer latency model of a device: each op of the deployed graph (:mod:`nas.layers`) costs

    max(MACs / (peak[precision] x efficiency[kind]), bytes moved / (bandwidth x bandwidth_eff))
    + overhead[kind]

and a network adds one fixed per-inference cost (``run_overhead_ms``: the runtime's call, input
and output copies). Data-movement ops (add, concat, shuffle, pools...) cost their bytes plus
their overhead; activations cost nothing on devices that fuse them into the op before; reshapes
are free. An op kind or a precision the device does not support is reported by name, never
priced as zero.

Runtimes that compute in a channel-blocked layout (onnxruntime's NCHWc on x86: 16 channels per
block with AVX-512, 8 with AVX2) run a compute op blocked only when its channels divide into
blocks (dense and depthwise convolutions, channels padded up to whole blocks; not grouped ones);
such ops get their own efficiency (``<kind>_blocked``) and compute their padding too, and every
switch between the blocked and the plain layout costs a reorder (``overhead_ms["reorder"]`` plus
the tensor's bytes).
A device model sets ``layout_block`` to the block size to get this; 0 turns it off.

>>> from nas.arch import parse
>>> from nas.layers import layer_table
>>> dev = DeviceModel(macs_per_s={"fp32": 1e9}, bandwidth_gb_s=1.0, efficiency={k: 1.0 for k in COMPUTE_KINDS},
...                   bandwidth_efficiency=1.0, overhead_ms={}, fuses_activations=True)
>>> round(predict(layer_table(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2")), dev).total_ms, 4)
0.0323
"""
from __future__ import annotations

from dataclasses import dataclass, field

from nas.costs import BYTES_PER_ELEMENT
from nas.errors import UserError
from nas.layers import Layer

COMPUTE_KINDS = ("conv", "pwconv", "gconv", "dwconv", "linear")
BLOCKABLE_KINDS = ("conv", "pwconv", "dwconv")
BLOCKED_KINDS = tuple(f"{k}_blocked" for k in BLOCKABLE_KINDS)
DATA_KINDS = ("add", "mul", "concat", "shuffle", "slice", "avgpool", "maxpool", "gap")
FREE_KINDS = ("flatten",)
FORMS = ("roofline", "linear")
ALL_KINDS = COMPUTE_KINDS + DATA_KINDS + ("act",) + FREE_KINDS
# Data ops that stay in the blocked layout between blocked convs (fused adds, blocked pooling).
_LAYOUT_NEUTRAL = ("act", "flatten", "add", "gap")


@dataclass(frozen=True)
class DeviceModel:
    """The numbers the model needs at one or more precisions; a profile file supplies them with
    their provenance."""

    macs_per_s: dict[str, float]  # peak multiply-adds per second by precision
    bandwidth_gb_s: float
    efficiency: dict[str, float]  # achieved share of peak, per compute kind (and <kind>_blocked)
    bandwidth_efficiency: float
    overhead_ms: dict[str, float]  # per-op fixed cost, per kind (missing kinds: 0); "reorder" for layout switches
    fuses_activations: bool = True
    supported_kinds: tuple[str, ...] = ALL_KINDS
    run_overhead_ms: float = 0.0  # once per inference
    layout_block: int = 0  # channels per block of a blocked layout; 0: none
    # "roofline": max(compute, memory) per op, as above. "linear": compute and memory add, with
    # fitted times per unit per kind instead of peak x efficiency: ms per million MACs and per MB
    # moved, keyed like efficiency (compute kinds) or by kind (data ops, "reorder").
    form: str = "roofline"
    linear_terms: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    total_ms: float
    per_layer: list[tuple[str, str, float]] = field(default_factory=list)  # (name, kind, ms)


def _pad(channels: int, block: int) -> int:
    return -(-channels // block) * block


def is_blocked(layer: Layer, block: int) -> bool:
    """Whether a runtime with ``block``-channel blocks runs this op in the blocked layout. As
    onnxruntime's NCHWc transformer does: dense and depthwise convolutions are blocked (channels
    padded up to whole blocks), grouped ones are not."""
    return block > 0 and layer.kind in ("conv", "pwconv", "dwconv")


def reads_plain_input(layer: Layer, block: int) -> bool:
    """A blocked dense conv with fewer input channels than a block (an image) reads the plain layout."""
    return layer.kind in ("conv", "pwconv") and layer.in_shape[1] < block


def effective_macs(layer: Layer, block: int) -> float:
    """MACs the runtime executes: a blocked op also computes its padding channels."""
    if not is_blocked(layer, block):
        return float(layer.macs)
    cin, cout = layer.in_shape[1], layer.out_shape[1]
    scale = _pad(cout, block) / cout
    if layer.kind != "dwconv" and cin >= block:
        scale *= _pad(cin, block) / cin
    return layer.macs * scale


def efficiency_key(layer: Layer, block: int) -> str:
    """The key of a compute op's efficiency (and linear terms): ``<kind>_blocked`` when blocked."""
    return f"{layer.kind}_blocked" if is_blocked(layer, block) else layer.kind


def layer_ms(layer: Layer, device: DeviceModel, precision: str) -> float:
    """Predicted time of one op; see the module docstring."""
    if layer.kind in FREE_KINDS or (layer.kind == "act" and device.fuses_activations):
        return 0.0
    nbytes = (layer.in_elems + layer.out_elems + layer.weight_elems) * BYTES_PER_ELEMENT[precision]
    if device.form == "linear":
        key = efficiency_key(layer, device.layout_block) if layer.kind in COMPUTE_KINDS else layer.kind
        per_mmac, per_mb = device.linear_terms.get(key, (0.0, 0.0))
        return per_mmac * effective_macs(layer, device.layout_block) * 1e-6 + per_mb * nbytes * 1e-6 + device.overhead_ms.get(layer.kind, 0.0)
    memory_s = nbytes / (device.bandwidth_gb_s * 1e9 * device.bandwidth_efficiency)
    seconds = memory_s
    if layer.kind in COMPUTE_KINDS:
        compute_s = effective_macs(layer, device.layout_block) / (device.macs_per_s[precision] * device.efficiency[efficiency_key(layer, device.layout_block)])
        seconds = max(compute_s, memory_s)
    return seconds * 1e3 + device.overhead_ms.get(layer.kind, 0.0)


def layout_switches(layers: list[Layer], block: int) -> list[Layer]:
    """The ops before which a blocked-layout runtime reorders its input: entering the blocked
    layout from a plain tensor with enough channels, and leaving it for an op that needs the plain
    layout."""
    if block <= 0:
        return []
    out, blocked = [], False
    for layer in layers:
        if layer.kind in _LAYOUT_NEUTRAL:
            continue
        now = is_blocked(layer, block)
        if now != blocked and not (now and reads_plain_input(layer, block)):
            out.append(layer)
        blocked = now
    return out


def reorder_bytes(layer: Layer, precision: str) -> int:
    """Bytes a reorder before ``layer`` moves: it reads one layout and writes the other."""
    return 2 * layer.in_elems * BYTES_PER_ELEMENT[precision]


def _reorders(layers: list[Layer], device: DeviceModel, precision: str) -> list[tuple[str, str, float]]:
    if device.form == "linear":  # ms per MB as fitted
        ms_per_byte = device.linear_terms.get("reorder", (0.0, 0.0))[1] * 1e-6
    else:
        ms_per_byte = 1e3 / (device.bandwidth_gb_s * 1e9 * device.bandwidth_efficiency)
    return [(f"reorder before {layer.name}", "reorder",
             device.overhead_ms.get("reorder", 0.0) + reorder_bytes(layer, precision) * ms_per_byte)
            for layer in layout_switches(layers, device.layout_block)]


def predict(layers: list[Layer], device: DeviceModel, *, precision: str = "fp32", where: str = "device") -> Prediction:
    """Sum of per-op times plus the per-inference overhead; raises naming the op kinds or
    precision the device cannot run."""
    if precision not in device.macs_per_s:
        raise UserError(f"{where} cannot run {precision}; allowed: {', '.join(device.macs_per_s)}")
    unsupported = sorted({l.kind for l in layers} - set(device.supported_kinds))
    if unsupported:
        raise UserError(f"{where} cannot price op kind(s) {', '.join(unsupported)}; it supports "
                        f"{', '.join(device.supported_kinds)}")
    per_layer = [(l.name, l.kind, layer_ms(l, device, precision)) for l in layers]
    per_layer += _reorders(layers, device, precision)
    if device.run_overhead_ms:
        per_layer.append(("run", "run", device.run_overhead_ms))
    return Prediction(total_ms=sum(ms for _, _, ms in per_layer), per_layer=per_layer)
