"""Per-layer latency model of a device: each op of the deployed graph (:mod:`nas.layers`) costs

    max(MACs / (peak[precision] x efficiency[kind]), bytes moved / (bandwidth x bandwidth_eff))
    + overhead[kind]

Data-movement ops (add, concat, shuffle, pools...) cost their bytes plus their overhead;
activations cost nothing on devices that fuse them into the op before; reshapes are free. An op
kind or a precision the device does not support is reported by name, never priced as zero.

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
DATA_KINDS = ("add", "mul", "concat", "shuffle", "slice", "avgpool", "maxpool", "gap")
FREE_KINDS = ("flatten",)
ALL_KINDS = COMPUTE_KINDS + DATA_KINDS + ("act",) + FREE_KINDS


@dataclass(frozen=True)
class DeviceModel:
    """The numbers the model needs; a profile file supplies them with their provenance."""

    macs_per_s: dict[str, float]  # peak multiply-adds per second by precision
    bandwidth_gb_s: float
    efficiency: dict[str, float]  # achieved share of peak, per compute kind
    bandwidth_efficiency: float
    overhead_ms: dict[str, float]  # per-op fixed cost, per kind (missing kinds: 0)
    fuses_activations: bool = True
    supported_kinds: tuple[str, ...] = ALL_KINDS


@dataclass(frozen=True)
class Prediction:
    total_ms: float
    per_layer: list[tuple[str, str, float]] = field(default_factory=list)  # (name, kind, ms)


def layer_ms(layer: Layer, device: DeviceModel, precision: str) -> float:
    """Predicted time of one op; see the module docstring."""
    if layer.kind in FREE_KINDS or (layer.kind == "act" and device.fuses_activations):
        return 0.0
    nbytes = (layer.in_elems + layer.out_elems + layer.weight_elems) * BYTES_PER_ELEMENT[precision]
    memory_s = nbytes / (device.bandwidth_gb_s * 1e9 * device.bandwidth_efficiency)
    seconds = memory_s
    if layer.kind in COMPUTE_KINDS:
        compute_s = layer.macs / (device.macs_per_s[precision] * device.efficiency[layer.kind])
        seconds = max(compute_s, memory_s)
    return seconds * 1e3 + device.overhead_ms.get(layer.kind, 0.0)


def predict(layers: list[Layer], device: DeviceModel, *, precision: str = "fp32", where: str = "device") -> Prediction:
    """Sum of per-op times; raises naming the op kinds or precision the device cannot run."""
    if precision not in device.macs_per_s:
        raise UserError(f"{where} cannot run {precision}; allowed: {', '.join(device.macs_per_s)}")
    unsupported = sorted({l.kind for l in layers} - set(device.supported_kinds))
    if unsupported:
        raise UserError(f"{where} cannot price op kind(s) {', '.join(unsupported)}; it supports "
                        f"{', '.join(device.supported_kinds)}")
    per_layer = [(l.name, l.kind, layer_ms(l, device, precision)) for l in layers]
    return Prediction(total_ms=sum(ms for _, _, ms in per_layer), per_layer=per_layer)
