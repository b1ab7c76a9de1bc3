"""Whole-network calibration: fit a device's per-layer model to published whole-network latencies.

A network's latency is the sum of its planned ops' costs plus one per-inference cost, so the
linear form's terms fit by non-negative least squares on network totals (relative error, so
small and large networks weigh alike). With tens of networks of a few families, not thousands of
blocks, the terms must be few and shared, or a family left out is predicted from terms only the
other families pinned down: time per inference, per million multiply-adds (any compute kind),
per million depthwise or grouped multiply-adds on top (kept >= 0: no device here runs them
faster per MAC than dense ones), per MB of activations read and written, per MB of weights; on a
GPU runtime (``gpu_terms``), per op (its kernel launch) and per MB of depthwise activations on
top (memory-bound kernels); on a
device with a parameter cache (the Edge TPU), per MB of weights beyond it (streamed from the
host every inference); where input and output cross a host link (the Edge TPU's USB, a DPU's
host-side pre-processing), per MB of network input and output.

Where a precision's measurements cover too few families to fit those terms (int8 TFLite on a
Raspberry Pi: two), its model is a scaled copy of another precision's model fitted on the same
device (``NetworkFitOptions.scale_from``): one factor on it plus a time per inference.

Error is measured leave-one-family-out: each family's networks are predicted by a fit on the
other families only, the model it is scaled from included.

>>> rows = [{"network": "resnet18", "runtime": "trt", "precision": "fp16", "latency_ms": "11.4"}]
>>> [m.key for m in read_network_rows(rows, runtime="trt", precision="fp16")[0]]
['resnet18_1x_224']
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import nnls
from scipy.stats import spearmanr

from nas.core.errors import UserError
from nas.core.vocab import BYTES_PER_ELEMENT
from nas.cost.layers import Layer, layer_table
from nas.hardware.latency_model import FittedModel, host_io_mb, predict, streamed_mb
from nas.hardware.plan import COMPUTE_KINDS, FREE_KINDS, GRAMMAR_KINDS, Op, plan
from nas.space.arch import ArchSpec, parse
from nas.space.zoo import DEFAULT_RESOLUTION, FAMILIES

DEPTHWISE_KINDS = ("dwconv", "gconv")


@dataclass(frozen=True)
class NetworkMeasurement:
    """One published latency of a whole network (``family`` groups it for cross-validation)."""

    key: str
    family: str
    spec: ArchSpec
    latency_ms: float
    source: str = ""


@dataclass(frozen=True)
class NetworkFitOptions:
    precision: str
    on_chip_mb: float = 0.0  # > 0: weights beyond it stream from the host (a fitted time per MB)
    host_io: bool = False  # fit a time per MB of network input and output (a host link)
    scale_from: str | None = None  # fit as a scaled copy of this precision's model (its rows given apart)
    # a GPU runtime (TensorRT): a time per planned op (its kernel launch) and a time per MB of
    # depthwise activations on top (depthwise kernels are memory bound on a GPU: their time follows
    # the bytes they move more than their few MACs)
    gpu_terms: bool = False


@dataclass(frozen=True)
class FamilyScore:
    n: int
    families: int
    mdape: float
    within_20pct: float
    spearman: float
    predicted: tuple[float, ...]  # out-of-family prediction of each measurement, in order


def spec_of(network: str, width: float | None, resolution: int | None) -> tuple[str, ArchSpec]:
    """(family, spec) of a zoo family name with width and resolution, or of an arch string."""
    if network in FAMILIES and network != "fbnet":
        res = resolution or DEFAULT_RESOLUTION.get(network, 224)
        return network, FAMILIES[network](width=width or 1.0, resolution=res, classes=1000, in_chs=3)
    if "-" in network:
        return "arch", parse(network)
    raise UserError(f"network {network!r} not allowed; allowed: a zoo family "
                    f"({', '.join(f for f in FAMILIES if f != 'fbnet')}) or an architecture string")


def _number(row: Mapping[str, str], key: str, i: int) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise UserError(f"row {i + 1}: column {key} value {text!r} not allowed; allowed: a finite number")
    return value


def read_network_rows(rows: Iterable[Mapping[str, str]], *, runtime: str,
                      precision: str) -> tuple[list[NetworkMeasurement], dict[str, int]]:
    """The rows measured with ``runtime`` at ``precision``; the others are counted by why they
    were skipped. Columns: network (zoo family or arch string), width, resolution, runtime,
    precision, latency_ms; optional family (grouping for cross-validation) and source."""
    kept: list[NetworkMeasurement] = []
    skipped: dict[str, int] = {}
    for i, row in enumerate(rows):
        missing = [c for c in ("network", "runtime", "precision", "latency_ms") if not (row.get(c) or "").strip()]
        if missing:
            raise UserError(f"row {i + 1}: missing {', '.join(missing)}; columns: network, width, resolution, "
                            "runtime, precision, latency_ms[, family, source]")
        if row["runtime"].strip().lower() != runtime.lower():
            skipped["other runtime"] = skipped.get("other runtime", 0) + 1
            continue
        if row["precision"].strip() != precision:
            skipped["other precision"] = skipped.get("other precision", 0) + 1
            continue
        width, res = _number(row, "width", i), _number(row, "resolution", i)
        if width is not None and not 0 < width <= 8:
            raise UserError(f"row {i + 1}: width {width:g} not allowed; allowed: numbers in (0, 8]")
        if res is not None and not (res == int(res) and 8 <= res <= 4096):
            raise UserError(f"row {i + 1}: resolution {res:g} not allowed; allowed: integers 8 to 4096")
        family, spec = spec_of(row["network"].strip(), width, int(res) if res else None)
        latency = _number(row, "latency_ms", i)
        if latency is None or not latency > 0:
            raise UserError(f"row {i + 1}: latency_ms {row['latency_ms']!r} not allowed; allowed: numbers > 0")
        name = row["network"].strip() if family == "arch" else f"{family}_{width or 1.0:g}x_{spec.resolution}"
        kept.append(NetworkMeasurement(name, (row.get("family") or "").strip() or family, spec, latency,
                                       (row.get("source") or "").strip()))
    return kept, skipped


def _ops(layers: list[Layer], precision: str) -> list[Op]:
    return plan(layers, runtime="generic", fuses_activations=True, precision=precision)


def features(layers: list[Layer], options: NetworkFitOptions) -> dict[str, float]:
    """The quantities the fitted terms multiply (see the module docstring)."""
    mb = BYTES_PER_ELEMENT[options.precision] * 1e-6
    ops = _ops(layers, options.precision)
    feats = {"run": 1.0, "mmac": 0.0, "mmac_dw": 0.0, "act_mb": 0.0, "weight_mb": 0.0}
    for op in ops:
        if op.key in COMPUTE_KINDS or op.kind in COMPUTE_KINDS:
            feats["mmac"] += op.macs * 1e-6
            if op.kind in DEPTHWISE_KINDS:
                feats["mmac_dw"] += op.macs * 1e-6
        feats["act_mb"] += (op.in_elems + op.out_elems) * mb
        feats["weight_mb"] += op.weight_elems * mb
    if options.on_chip_mb:
        feats["stream_mb"] = streamed_mb(ops, options.precision, options.on_chip_mb)
    if options.host_io:
        feats["io_mb"] = host_io_mb(layers, options.precision)
    if options.gpu_terms:
        feats["op"] = float(sum(op.kind not in FREE_KINDS for op in ops))
        feats["dw_mb"] = sum((op.in_elems + op.out_elems) * mb for op in ops if op.kind in DEPTHWISE_KINDS)
    return feats


def _nnls(x: np.ndarray, measurements: Sequence[NetworkMeasurement]) -> np.ndarray:
    y = np.array([m.latency_ms for m in measurements])
    coef, _ = nnls(x / y[:, None], np.ones(len(y)), maxiter=100 * x.shape[1])
    return coef


def _model(v: dict[str, float], options: NetworkFitOptions) -> FittedModel:
    act, weight = v["act_mb"], v["weight_mb"]
    terms: dict[str, dict[str, float]] = {}
    for kind in GRAMMAR_KINDS:
        if kind in FREE_KINDS:
            continue
        moved = act + (v.get("dw_mb", 0.0) if kind in DEPTHWISE_KINDS else 0.0)
        terms[kind] = {"in_mb": moved, "out_mb": moved}
        if kind in COMPUTE_KINDS:
            mmac = v["mmac"] + (v["mmac_dw"] if kind in DEPTHWISE_KINDS else 0.0)
            terms[kind] |= {"mmac": mmac, "weight_mb": weight}
    per_op = {kind: v["op"] for kind in GRAMMAR_KINDS if kind not in FREE_KINDS} if v.get("op") else {}
    return FittedModel(efficiency={k: 1.0 for k in COMPUTE_KINDS}, bandwidth_efficiency=1.0, overhead_ms=per_op,
                       run_overhead_ms=v["run"], form="linear", linear_terms=terms, on_chip_mb=options.on_chip_mb,
                       stream_ms_per_mb=v.get("stream_mb", 0.0), io_ms_per_mb=v.get("io_mb", 0.0))


def fit_networks(measurements: Sequence[NetworkMeasurement], options: NetworkFitOptions,
                 base: Sequence[NetworkMeasurement] = ()) -> FittedModel:
    """The linear-form model fitted to ``measurements`` by non-negative least squares on relative
    error; with ``options.scale_from``, a scaled copy of the model fitted to ``base`` (rows at
    that precision), its factor and per-inference time fitted to ``measurements``."""
    if not measurements:
        raise UserError(f"no measurements at {options.precision} to fit")
    if options.scale_from:
        if not base:
            raise UserError(f"scaling from {options.scale_from} needs measurements at {options.scale_from}")
        base_options = replace(options, precision=options.scale_from, scale_from=None)
        reference = fit_networks(base, base_options)
        x = np.array([[1.0, predict_network(reference, m.spec, options.scale_from)] for m in measurements])
        extra, factor = map(float, _nnls(x, measurements))
        ratio = BYTES_PER_ELEMENT[options.scale_from] / BYTES_PER_ELEMENT[options.precision]
        mmacs = [features(layer_table(m.spec), options)["mmac"] for m in measurements]
        lo, hi = min(mmacs + list(reference.mmac_range[:1])), max(mmacs + list(reference.mmac_range[1:]))
        return replace(reference.scaled(factor, ratio, extra), mmac_range=(lo, hi))
    tables = [layer_table(m.spec) for m in measurements]
    rows = [features(t, options) for t in tables]
    names = list(rows[0])
    coef = _nnls(np.array([[r[n] for n in names] for r in rows]), measurements)
    seen = {layer.kind for t in tables for layer in t if layer.macs}
    unfitted = tuple(k for k in COMPUTE_KINDS if k not in seen)
    mmacs = [r["mmac"] for r in rows]
    return replace(_model(dict(zip(names, map(float, coef))), options), unfitted_kinds=unfitted,
                   mmac_range=(min(mmacs), max(mmacs)))


def predict_network(fitted: FittedModel, spec: ArchSpec, precision: str) -> float:
    """Predicted latency of ``spec`` by a model from :func:`fit_networks` (ms)."""
    device = fitted.on(macs_per_s={precision: 1.0}, bandwidth_gb_s=1.0)
    return predict(layer_table(spec), device, precision=precision).total_ms


def score(measurements: Sequence[NetworkMeasurement], predicted: Sequence[float]) -> FamilyScore:
    measured = np.array([m.latency_ms for m in measurements])
    ape = np.abs(np.array(predicted) / measured - 1)
    rho = float(spearmanr(predicted, measured).statistic) if len(measured) > 2 else float("nan")
    return FamilyScore(n=len(measurements), families=len({m.family for m in measurements}),
                       mdape=float(np.median(ape)), within_20pct=float(np.mean(ape <= 0.20)), spearman=rho,
                       predicted=tuple(predicted))


def leave_one_family_out(measurements: Sequence[NetworkMeasurement], options: NetworkFitOptions,
                         base: Sequence[NetworkMeasurement] = ()) -> FamilyScore:
    """Predict each family's networks with a fit on the other families only (``base`` rows of
    the family left out too); score all predictions."""
    families = sorted({m.family for m in measurements})
    if len(families) < 2:
        raise UserError(f"leave-one-family-out needs measurements of at least 2 families, got {families}")
    predicted = [0.0] * len(measurements)
    for family in families:
        fitted = fit_networks([m for m in measurements if m.family != family], options,
                              [m for m in base if m.family != family])
        for i, m in enumerate(measurements):
            if m.family == family:
                predicted[i] = predict_network(fitted, m.spec, options.precision)
    return score(measurements, predicted)
