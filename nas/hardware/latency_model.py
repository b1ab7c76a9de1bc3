"""Per-layer latency model of a device: each op of the deployed graph (:mod:`nas.cost.layers`) costs

    max(MACs / (peak[precision] x efficiency[kind]), bytes moved / (bandwidth x bandwidth_eff))
    + overhead[kind]

and a network adds one fixed per-inference cost (``run_overhead_ms``: the runtime's call, input
and output copies), and on an accelerator with a parameter cache (``on_chip_mb``) a time per MB
of weights beyond it (streamed from the host every inference) and per MB of input and output
moved over the host link. Data-movement ops (add, concat, shuffle, pools...) cost their bytes plus
their overhead; activations cost nothing on devices that fuse them into the op before; reshapes
are free. An op kind or a precision the device does not support is reported by name, never
priced as zero.

The ops are those :func:`nas.hardware.plan.plan` says the runtime executes. A device's fitted
parameters at one precision are one :class:`FittedModel`: calibration makes it, a profile's
``model.<precision>`` section stores it, and :meth:`FittedModel.on` puts it on a device's peak
and bandwidth (a :class:`DeviceModel`) to predict.

>>> from nas.space.arch import parse
>>> from nas.cost.layers import layer_table
>>> fitted = FittedModel(efficiency={k: 1.0 for k in COMPUTE_KINDS}, bandwidth_efficiency=1.0, overhead_ms={})
>>> dev = fitted.on(macs_per_s={"fp32": 1e9}, bandwidth_gb_s=1.0)
>>> round(predict(layer_table(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2")), dev).total_ms, 4)
0.0323
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from nas.core.errors import UserError
from nas.core.schema import check, check_choices
from nas.core.vocab import BYTES_PER_ELEMENT
from nas.cost.layers import Layer
from nas.hardware.plan import ALL_KINDS, BLOCKED_KINDS, COMPUTE_KINDS, REORDER_KEYS, RUNTIMES, Op, plan

FORMS = ("roofline", "linear")
BAND = (0.1, 0.9)  # the quantiles of held-out error a prediction's interval spans (10th-90th percentile)
# Units of the linear form's terms: each term of a key is ms per one of these.
LINEAR_UNITS = {
    "mmac": "million multiply-adds",
    "mb": "MB read and written, weights included",
    "in_mb": "MB of activations read",
    "out_mb": "MB written",
    "weight_mb": "MB of weights and biases",
    "group": "group of a grouped conv (onnxruntime runs one GEMM per group)",
    "group_mpos": "million (groups x output positions) of a grouped conv: the rows of its per-group GEMMs",
}


@dataclass(frozen=True)
class FittedModel:
    """A device's fitted latency parameters at one precision, with how they were fitted (``fit``).

    "roofline" form: max(compute, memory) per op from ``efficiency`` (achieved share of peak, per
    compute kind and ``<kind>_blocked``) and ``bandwidth_efficiency``. "linear" form: a sum of
    fitted times per unit (``linear_terms``: key -> {LINEAR_UNITS unit: ms per unit}), keyed like
    efficiency or by kind (data ops, reorder_in/out). Both add ``overhead_ms`` per op (by key,
    else by kind; missing: 0) and ``run_overhead_ms`` once per inference.
    """

    efficiency: dict[str, float]
    bandwidth_efficiency: float
    overhead_ms: dict[str, float]
    fuses_activations: bool = True
    fit: str = ""  # method, data, date, cross-validated error (a profile requires it)
    run_overhead_ms: float = 0.0
    form: str = "roofline"
    linear_terms: dict[str, dict[str, float]] = field(default_factory=dict)
    layout_block: int = 0  # channels per block of the runtime's blocked layout (nas.hardware.plan); 0: none
    runtime: str = "generic"  # whose graph rules the model plans ops by (nas.hardware.plan.plan)
    at_bandwidth: tuple[str, ...] = ()  # linear: data kinds the data lacked, their bytes priced at peak bandwidth
    on_chip_mb: float = 0.0  # parameter cache of an accelerator: weights beyond it stream in every inference
    stream_ms_per_mb: float = 0.0  # time per MB of weights streamed (beyond on_chip_mb, in op order)
    io_ms_per_mb: float = 0.0  # time per MB of network input and output moved to and from the device
    unfitted_kinds: tuple[str, ...] = ()  # compute kinds no calibration network had: their price is extrapolated
    mmac_range: tuple[float, ...] = ()  # (smallest, largest) million MACs of the calibration networks; () unknown
    # measured / predicted of each calibration network predicted by a fit without it (its family
    # or half left out): the error band of every prediction (:meth:`band`); () where not measured
    held_out_ratios: tuple[float, ...] = ()
    held_out_how: str = ""  # how the ratios were measured (leave-one-family-out over N networks ...)

    def __post_init__(self) -> None:
        check_choices(self.efficiency, "model.efficiency", COMPUTE_KINDS + BLOCKED_KINDS)
        check(set(COMPUTE_KINDS) <= set(self.efficiency), "model.efficiency", sorted(self.efficiency),
              f"one entry per compute kind: {', '.join(COMPUTE_KINDS)}")
        check(self.form in FORMS, "model.form", self.form, ", ".join(FORMS))
        check(self.runtime in RUNTIMES, "model.runtime", self.runtime, ", ".join(RUNTIMES))
        check(not self.layout_block or self.runtime == "onnxruntime", "model.layout_block", self.layout_block,
              "0 unless runtime is onnxruntime (the blocked-layout rules are onnxruntime's)")
        check(self.run_overhead_ms >= 0, "model.run_overhead_ms", self.run_overhead_ms, "numbers >= 0")
        check_choices(self.linear_terms, "model.linear_terms", ALL_KINDS + BLOCKED_KINDS + REORDER_KEYS)
        for kind, terms in self.linear_terms.items():
            check_choices(terms, f"model.linear_terms.{kind}", LINEAR_UNITS)
            for unit, ms in terms.items():
                check(ms >= 0, f"model.linear_terms.{kind}.{unit}", ms, "numbers >= 0 (ms per unit)")
        for kind, eff in self.efficiency.items():
            check(0 < eff <= 1, f"model.efficiency.{kind}", eff, "0 < x <= 1")
        check(0 < self.bandwidth_efficiency <= 1, "model.bandwidth_efficiency", self.bandwidth_efficiency, "0 < x <= 1")
        check_choices(self.unfitted_kinds, "model.unfitted_kinds", COMPUTE_KINDS)
        check(not self.mmac_range or (len(self.mmac_range) == 2 and 0 <= self.mmac_range[0] <= self.mmac_range[1]),
              "model.mmac_range", self.mmac_range, "[smallest, largest] million MACs, or absent")
        check_choices(self.overhead_ms, "model.overhead_ms", ALL_KINDS + BLOCKED_KINDS + ("reorder",) + REORDER_KEYS)
        for kind, ms in self.overhead_ms.items():
            check(ms >= 0, f"model.overhead_ms.{kind}", ms, "numbers >= 0")
        for key in ("on_chip_mb", "stream_ms_per_mb", "io_ms_per_mb"):
            check(getattr(self, key) >= 0, f"model.{key}", getattr(self, key), "numbers >= 0")
        check(all(r > 0 for r in self.held_out_ratios), "model.held_out_ratios", self.held_out_ratios,
              "ratios > 0 (measured / predicted)")

    def ratio_at(self, quantile: float) -> float | None:
        """The ``quantile`` of measured / predicted over the held-out networks (None: not measured)."""
        if not self.held_out_ratios:
            return None
        return float(np.quantile(np.array(self.held_out_ratios), quantile))

    def band(self, ms: float, low: float = BAND[0], high: float = BAND[1]) -> tuple[float, float] | None:
        """The interval a prediction of ``ms`` holds with: its ``low``-``high`` quantiles of
        held-out error (by default the 10th-90th percentile); None where no error was measured."""
        lo, hi = self.ratio_at(low), self.ratio_at(high)
        return None if lo is None or hi is None else (ms * lo, ms * hi)

    def on(self, *, macs_per_s: Mapping[str, float], bandwidth_gb_s: float,
           supported_kinds: tuple[str, ...] = ALL_KINDS) -> DeviceModel:
        """This fit on a device's peaks (by precision) and bandwidth: what :func:`predict` prices with."""
        return DeviceModel(dict(macs_per_s), bandwidth_gb_s, self, supported_kinds)

    def carried(self, peak_ratio: float, bandwidth_ratio: float) -> FittedModel:
        """This fit on a device with ``peak_ratio`` times the peak and ``bandwidth_ratio`` times the
        bandwidth of the measured one. The roofline form's efficiencies are shares of peak and
        carry unchanged; the linear form's times per MAC (and per group-position) scale with the
        peak, its times per byte with the bandwidth; overheads (per op, per group) carry unchanged."""
        if self.form != "linear":
            return self
        scale = {"mmac": 1 / peak_ratio, "group_mpos": 1 / peak_ratio, "group": 1.0}
        terms = {key: {unit: v * scale.get(unit, 1 / bandwidth_ratio) for unit, v in t.items()}
                 for key, t in self.linear_terms.items()}
        return replace(self, linear_terms=terms)

    def scaled(self, factor: float, bytes_ratio: float, extra_run_ms: float) -> FittedModel:
        """This linear fit times ``factor`` (every time per unit, per op and per inference), plus
        ``extra_run_ms`` per inference, for data ``bytes_ratio`` times as wide per element (a
        model of int8 kernels as a scaled copy of the same runtime's fp32 model: bytes_ratio 4)."""
        if self.form != "linear":
            raise UserError("only a linear-form model can be scaled to another precision")
        per_mb = factor * bytes_ratio
        terms = {key: {unit: v * (per_mb if unit.endswith("mb") else factor) for unit, v in t.items()}
                 for key, t in self.linear_terms.items()}
        return replace(self, linear_terms=terms, overhead_ms={k: v * factor for k, v in self.overhead_ms.items()},
                       run_overhead_ms=self.run_overhead_ms * factor + extra_run_ms,
                       stream_ms_per_mb=self.stream_ms_per_mb * per_mb, io_ms_per_mb=self.io_ms_per_mb * per_mb)

    def to_section(self) -> dict[str, object]:
        """The ``model.<precision>`` mapping of a profile file (rounded; defaults left out)."""
        section: dict[str, object] = {
            "efficiency": {k: round(v, 6) for k, v in self.efficiency.items()},
            "bandwidth_efficiency": round(self.bandwidth_efficiency, 6),
            "overhead_ms": {k: round(v, 6) for k, v in self.overhead_ms.items()},
            "fuses_activations": self.fuses_activations,
        }
        if self.run_overhead_ms:
            section["run_overhead_ms"] = round(self.run_overhead_ms, 6)
        if self.form != "roofline":
            section["form"] = self.form
            section["linear_terms"] = {key: {unit: float(f"{v:.6g}") for unit, v in terms.items()}
                                       for key, terms in self.linear_terms.items()}
        if self.runtime != "generic":
            section["runtime"] = self.runtime
        if self.layout_block:
            section["layout_block"] = self.layout_block
        for key in ("on_chip_mb", "stream_ms_per_mb", "io_ms_per_mb"):
            if getattr(self, key):
                section[key] = float(f"{getattr(self, key):.6g}")
        if self.unfitted_kinds:
            section["unfitted_kinds"] = list(self.unfitted_kinds)
        if self.mmac_range:
            section["mmac_range"] = [float(f"{v:.6g}") for v in self.mmac_range]
        if self.held_out_ratios:
            section["held_out_ratios"] = [round(v, 4) for v in sorted(self.held_out_ratios)]
            section["held_out_how"] = self.held_out_how
        section["fit"] = self.fit
        return section


@dataclass(frozen=True)
class DeviceModel:
    """A fitted model on a device: peak multiply-adds per second by precision, bandwidth, and the
    op kinds the device runs. Made by :meth:`FittedModel.on`; a profile supplies the numbers
    with their provenance."""

    macs_per_s: dict[str, float]
    bandwidth_gb_s: float
    fitted: FittedModel
    supported_kinds: tuple[str, ...] = ALL_KINDS


@dataclass(frozen=True)
class Prediction:
    total_ms: float
    per_layer: list[tuple[str, str, float]] = field(default_factory=list)  # (name, kind, ms)


def linear_units(op: Op, precision: str) -> dict[str, float]:
    """How many of each LINEAR_UNITS ``op`` has at ``precision`` (units it has none of are left out)."""
    mb = BYTES_PER_ELEMENT[precision] * 1e-6
    units = {"mb": op.elems * mb, "in_mb": op.in_elems * mb, "out_mb": op.out_elems * mb}
    if op.weight_elems:
        units["weight_mb"] = op.weight_elems * mb
    if op.key in COMPUTE_KINDS or op.kind in COMPUTE_KINDS:
        units["mmac"] = op.macs * 1e-6
    if op.kind == "gconv":
        units |= {"group": float(op.groups), "group_mpos": op.groups * op.positions * 1e-6}
    return units


def streamed_mb(ops: list[Op], precision: str, on_chip_mb: float) -> float:
    """MB of weights beyond a parameter cache of ``on_chip_mb``, filled in op order (the Edge TPU
    compiler caches the first layers' parameters and streams the rest every inference)."""
    total = sum(op.weight_elems for op in ops) * BYTES_PER_ELEMENT[precision] * 1e-6
    return max(0.0, total - on_chip_mb)


def host_io_mb(layers: list[Layer], precision: str) -> float:
    """MB of network input and output at ``precision``: what crosses a host link each inference."""
    return (layers[0].in_elems + layers[-1].out_elems) * BYTES_PER_ELEMENT[precision] * 1e-6


def op_ms(op: Op, device: DeviceModel, precision: str) -> float:
    """Predicted time of one planned op; see the module docstring."""
    fitted = device.fitted
    nbytes = op.elems * BYTES_PER_ELEMENT[precision]
    overhead = fitted.overhead_ms.get(op.key, fitted.overhead_ms.get(op.kind, 0.0))
    if fitted.form == "linear":
        terms = fitted.linear_terms.get(op.key, {})
        return sum(terms.get(unit, 0.0) * n for unit, n in linear_units(op, precision).items()) + overhead
    seconds = nbytes / (device.bandwidth_gb_s * 1e9 * fitted.bandwidth_efficiency)
    if op.key in COMPUTE_KINDS or op.kind in COMPUTE_KINDS:
        seconds = max(seconds, op.macs / (device.macs_per_s[precision] * fitted.efficiency[op.key]))
    return seconds * 1e3 + overhead


def device_plan(layers: list[Layer], device: DeviceModel, precision: str = "fp32") -> list[Op]:
    fitted = device.fitted
    return plan(layers, runtime=fitted.runtime, layout_block=fitted.layout_block,
                fuses_activations=fitted.fuses_activations, precision=precision)


def predict(layers: list[Layer], device: DeviceModel, *, precision: str = "fp32", where: str = "device") -> Prediction:
    """Sum of per-op times plus the per-inference overhead; raises naming the op kinds or
    precision the device cannot run."""
    if precision not in device.macs_per_s:
        raise UserError(f"{where} cannot run {precision}; allowed: {', '.join(device.macs_per_s)}")
    unsupported = sorted({l.kind for l in layers} - set(device.supported_kinds))
    if unsupported:
        raise UserError(f"{where} cannot price op kind(s) {', '.join(unsupported)}; it supports "
                        f"{', '.join(device.supported_kinds)}")
    ops = device_plan(layers, device, precision)
    per_layer = [(op.name, op.kind, op_ms(op, device, precision)) for op in ops]
    fitted = device.fitted
    if fitted.run_overhead_ms:
        per_layer.append(("run", "run", fitted.run_overhead_ms))
    if fitted.stream_ms_per_mb:
        per_layer.append(("weights streamed beyond the on-chip cache", "stream",
                          fitted.stream_ms_per_mb * streamed_mb(ops, precision, fitted.on_chip_mb)))
    if fitted.io_ms_per_mb and layers:
        per_layer.append(("input and output transfer", "io", fitted.io_ms_per_mb * host_io_mb(layers, precision)))
    return Prediction(total_ms=sum(ms for _, _, ms in per_layer), per_layer=per_layer)
