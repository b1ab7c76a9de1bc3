"""Fitting a device's latency model (:class:`~nas.hardware.latency_model.FittedModel`) to measured
latencies, and scoring it on data it was not fitted to.

Two forms: the roofline form (efficiency per compute kind, bandwidth efficiency, per-op
overheads; least squares on log latency) and the linear form (fitted times per unit of
:data:`FIT_UNITS` and per op; non-negative least squares on relative error). A measurement is a
list of layers and its latency: a block of HW-NAS-Bench's tables (:mod:`nas.hardware.hwnasbench`)
or a whole network timed by ``hwnas profile build``.

>>> FitOptions(form="linear", macs_per_s=1e9, bandwidth_gb_s=10.0).precision
'fp32'
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares, nnls
from scipy.stats import spearmanr

from nas.core.errors import UserError
from nas.cost.layers import Layer
from nas.hardware.latency_model import FORMS, DeviceModel, FittedModel, linear_units, predict
from nas.hardware.plan import BLOCKABLE_KINDS, BLOCKED_KINDS, COMPUTE_KINDS, DATA_KINDS, Op, plan

# Kinds that get an overhead of their own; the other data-movement kinds share "data", so kinds
# that calibration blocks lack (FBNet blocks have no concat, max pool or slice) are still priced,
# with an overhead fitted on the data ops that do occur (add, global pooling).
_OVERHEAD_GROUPS = {**{k: k for k in COMPUTE_KINDS}, "shuffle": "shuffle",
                    **{k: "data" for k in DATA_KINDS if k != "shuffle"}, "act": "data"}
_GROUPS = sorted(set(_OVERHEAD_GROUPS.values()))
# The units fit_linear fits per op key: compute, memory split by direction (reads, writes and
# weights cost differently: writes allocate, weights are reused), and a grouped conv's per-group GEMMs.
FIT_UNITS = ("mmac", "in_mb", "out_mb", "weight_mb", "group", "group_mpos")


@dataclass(frozen=True)
class BlockMeasurement:
    """Measured latency of the layers of one block or network (``key`` names it)."""

    key: str
    layers: list[Layer]
    latency_ms: float


@dataclass(frozen=True)
class Score:
    n: int
    mdape: float  # median absolute percentage error
    within_10pct: float
    spearman: float


@dataclass(frozen=True)
class FitOptions:
    """How to fit: the form, the peak and bandwidth of the measured device at ``precision``, and
    the runtime whose graph rules plan the ops (``layout_block`` for onnxruntime's NCHWc).
    ``run_overhead`` fits a per-inference cost (measurements of whole networks). For the linear
    form the peak only labels the result and the bandwidth prices data kinds the data lacks."""

    form: str
    macs_per_s: float
    bandwidth_gb_s: float
    precision: str = "fp32"
    run_overhead: bool = False
    layout_block: int = 0
    runtime: str = "generic"
    fuses_activations: bool = True

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise UserError(f"form {self.form!r} not allowed; allowed: {', '.join(FORMS)}")

    def device(self, fitted: FittedModel) -> DeviceModel:
        """``fitted`` on the measured device (for scoring against its measurements)."""
        return fitted.on(macs_per_s={self.precision: self.macs_per_s}, bandwidth_gb_s=self.bandwidth_gb_s)


def unseen_kinds(blocks: list[BlockMeasurement]) -> list[str]:
    """Data-movement kinds absent from the blocks (priced with the shared data overhead)."""
    seen = {layer.kind for b in blocks for layer in b.layers}
    return sorted(k for k in DATA_KINDS if k not in seen)


def check_identifiable(blocks: list[BlockMeasurement], assume: dict[str, str] | None = None) -> None:
    """Raise unless every parameter group occurs in ``blocks`` or is assumed (``assume``: a compute
    kind the data lacks -> one it has, whose fitted parameters it takes)."""
    seen = {_OVERHEAD_GROUPS.get(layer.kind) for b in blocks for layer in b.layers}
    for kind, like in (assume or {}).items():
        if kind not in COMPUTE_KINDS or kind in seen:
            raise UserError(f"assumption {kind}={like}: {kind!r} not allowed; allowed: compute kinds the "
                            f"measurements lack ({', '.join(k for k in COMPUTE_KINDS if k not in seen) or 'none'})")
        if like not in seen or like not in COMPUTE_KINDS:
            raise UserError(f"assumption {kind}={like}: {like!r} not allowed; allowed: compute kinds the "
                            f"measurements have ({', '.join(k for k in COMPUTE_KINDS if k in seen)})")
    missing = [g for g in _GROUPS if g not in seen and g not in (assume or {})]
    if missing:
        raise UserError(f"the measurements have no {', '.join(missing)} layers, so their parameters cannot be "
                        f"fitted; measure blocks that contain them, or for a compute kind state an assumption "
                        f"such as {missing[0]}=pwconv (it runs with that kind's fitted parameters)")


def with_assumptions(fitted: FittedModel, assume: dict[str, str]) -> FittedModel:
    """``fitted`` with each assumed kind at the efficiency, overhead and linear terms of the kind it
    is assumed to run like."""
    return replace(fitted, efficiency={**fitted.efficiency, **{k: fitted.efficiency[v] for k, v in assume.items()}},
                   overhead_ms={**fitted.overhead_ms, **{k: fitted.overhead_ms[v] for k, v in assume.items()}},
                   linear_terms={**fitted.linear_terms, **{k: dict(fitted.linear_terms[v]) for k, v in assume.items()
                                                           if v in fitted.linear_terms}})


@dataclass(frozen=True)
class _Params:
    """The parameters of a roofline fit: log-efficiencies by key, then log bandwidth efficiency,
    then overheads by group (ms, >= 0)."""

    eff_keys: tuple[str, ...]
    groups: tuple[str, ...]
    options: FitOptions

    def model(self, theta: np.ndarray) -> FittedModel:
        n = len(self.eff_keys)
        effs = dict(zip(self.eff_keys, map(float, np.exp(theta[:n]))))
        if self.options.layout_block:
            for kind in BLOCKABLE_KINDS:  # a blocked kind the data lacks runs as the plain one
                effs.setdefault(f"{kind}_blocked", effs[kind])
        group_ms = dict(zip(self.groups, map(float, theta[n + 1:])))
        overheads = {kind: group_ms[group] for kind, group in _OVERHEAD_GROUPS.items()}
        if "reorder" in group_ms:
            overheads["reorder"] = group_ms["reorder"]
        o = self.options
        return FittedModel(efficiency=effs, bandwidth_efficiency=float(np.exp(theta[n])), overhead_ms=overheads,
                           fuses_activations=o.fuses_activations, run_overhead_ms=group_ms.get("run", 0.0),
                           layout_block=o.layout_block, runtime=o.runtime)


def fit_roofline(blocks: list[BlockMeasurement], options: FitOptions) -> FittedModel:
    """Least squares on log latency; efficiencies in (0, 1], overheads >= 0 (one per compute kind,
    shuffle, and one shared by the other data-movement ops; a layout reorder with ``layout_block``;
    a per-inference overhead with ``run_overhead``). Parameters of kinds absent from ``blocks``
    stay at their start values: fine for scoring such blocks, not for a profile (calibration
    refuses those, :func:`check_identifiable`)."""
    o = options
    eff_keys: tuple[str, ...] = COMPUTE_KINDS
    if o.layout_block:
        seen = {op.key for b in blocks
                for op in plan(b.layers, runtime=o.runtime, layout_block=o.layout_block, precision=o.precision)}
        eff_keys = COMPUTE_KINDS + tuple(k for k in BLOCKED_KINDS if k in seen)
    groups = tuple(_GROUPS) + (("reorder",) if o.layout_block else ()) + (("run",) if o.run_overhead else ())
    params = _Params(eff_keys, groups, o)
    n_eff, n_over = len(eff_keys) + 1, len(groups)
    measured = np.log([b.latency_ms for b in blocks])

    def residuals(theta: np.ndarray) -> np.ndarray:
        device = o.device(params.model(theta))
        return np.log([max(predict(b.layers, device, precision=o.precision).total_ms, 1e-9) for b in blocks]) - measured

    lower = np.array([np.log(1e-4)] * n_eff + [0.0] * n_over)
    upper = np.array([0.0] * n_eff + [np.inf] * n_over)
    # The max() in the model makes the objective non-smooth: start from a few efficiency levels
    # and keep the best local optimum.
    runs = [least_squares(residuals, np.array([np.log(e0)] * n_eff + [0.01] * n_over), bounds=(lower, upper),
                        x_scale="jac") for e0 in (0.03, 0.3)]
    return params.model(min(runs, key=lambda r: r.cost).x)


def _overhead_group(op: Op) -> str:
    """Compute ops and reorders have their own overhead per key (a blocked conv's differs from the
    plain one's); data ops share one by kind (see _OVERHEAD_GROUPS)."""
    return op.key if op.kind in COMPUTE_KINDS or op.kind == "reorder" else _OVERHEAD_GROUPS[op.kind]


def _linear_features(layers: list[Layer], o: FitOptions) -> dict[str, float]:
    """Per-unit quantities of the linear form over the planned ops: "<unit>:<key>" sums of
    FIT_UNITS and "ops:<overhead group>" op counts."""
    feats: dict[str, float] = {}
    for op in plan(layers, runtime=o.runtime, layout_block=o.layout_block, precision=o.precision):
        for unit, n in linear_units(op, o.precision).items():
            if unit in FIT_UNITS:
                feats[f"{unit}:{op.key}"] = feats.get(f"{unit}:{op.key}", 0.0) + n
        group = f"ops:{_overhead_group(op)}"
        feats[group] = feats.get(group, 0.0) + 1.0
    return feats


def fit_linear(blocks: list[BlockMeasurement], options: FitOptions) -> FittedModel:
    """The linear form (a sum of fitted times per unit of FIT_UNITS and per op; see
    nas.hardware.latency_model): non-negative least squares on relative error, so small and large
    blocks weigh alike."""
    o = options
    rows = [_linear_features(b.layers, o) for b in blocks]
    names = sorted({n for r in rows for n in r} | ({"ops:run"} if o.run_overhead else set()))
    x = np.array([[r.get(n, 1.0 if n == "ops:run" else 0.0) for n in names] for r in rows])
    y = np.array([b.latency_ms for b in blocks])
    coef, _ = nnls(x / y[:, None], np.ones(len(y)), maxiter=50 * len(names))
    values = dict(zip(names, map(float, coef)))
    terms: dict[str, dict[str, float]] = {}
    for name, value in values.items():
        unit, key = name.split(":", 1)
        if unit in FIT_UNITS:
            terms.setdefault(key, {})[unit] = value
    # A data-movement kind the measurements lack has no fitted rates: its bytes are priced at the
    # peak bandwidth (reading and writing at 100% of it, the roofline's floor), not at nothing.
    at_bandwidth = tuple(k for k in DATA_KINDS if k not in terms)
    terms |= {kind: {"in_mb": 1.0 / o.bandwidth_gb_s, "out_mb": 1.0 / o.bandwidth_gb_s} for kind in at_bandwidth}
    group_ms = {n.split(":", 1)[1]: v for n, v in values.items() if n.startswith("ops:")}
    overheads = {kind: group_ms.get(group, 0.0) for kind, group in _OVERHEAD_GROUPS.items()}
    overheads.update({key: ms for key, ms in group_ms.items() if key not in overheads and key not in ("data", "run")})
    # Efficiency as achieved share of peak, for reading the fit; the linear form predicts from the terms.
    efficiency = {k: min(1.0, 1e3 / (t["mmac"] * 1e-6 * o.macs_per_s * 1e3)) if t.get("mmac", 0) > 0 else 1.0
                  for k, t in terms.items() if k in COMPUTE_KINDS + BLOCKED_KINDS}
    for kind in COMPUTE_KINDS:
        efficiency.setdefault(kind, 1.0)
    return FittedModel(efficiency=efficiency, bandwidth_efficiency=1.0, overhead_ms=overheads,
                       run_overhead_ms=group_ms.get("run", 0.0), layout_block=o.layout_block, form="linear",
                       linear_terms=terms, runtime=o.runtime, at_bandwidth=at_bandwidth,
                       fuses_activations=o.fuses_activations)


def fit_model(blocks: list[BlockMeasurement], options: FitOptions) -> FittedModel:
    """Fit ``blocks`` in ``options.form``."""
    return fit_linear(blocks, options) if options.form == "linear" else fit_roofline(blocks, options)


def score(blocks: list[BlockMeasurement], device: DeviceModel) -> Score:
    """Error of ``device``'s predictions against the measurements (at its one precision)."""
    measured = np.array([b.latency_ms for b in blocks])
    precision = next(iter(device.macs_per_s))
    predicted = np.array([predict(b.layers, device, precision=precision).total_ms for b in blocks])
    ape = np.abs(predicted / measured - 1)
    return Score(n=len(blocks), mdape=float(np.median(ape)), within_10pct=float(np.mean(ape <= 0.10)),
                 spearman=float(spearmanr(predicted, measured).statistic))


def cross_validate(blocks: list[BlockMeasurement], options: FitOptions, *, seed: int = 0) -> Score:
    """Fit on a seeded half of the blocks, score on the other half."""
    order = np.random.default_rng(seed).permutation(len(blocks))
    half = len(blocks) // 2
    train = [blocks[i] for i in order[:half]]
    test = [blocks[i] for i in order[half:]]
    return score(test, options.device(fit_model(train, options)))


def fit_table(blocks: list[BlockMeasurement], *, form: str = "auto", macs_per_s: float, bandwidth_gb_s: float,
              precision: str = "fp32", seed: int = 0) -> tuple[str, dict[str, Score], FittedModel]:
    """Fit per-block measurements (blocks, not whole runs: no per-inference overhead) in ``form``
    (roofline, linear, or auto: both, keeping the lower held-out MdAPE). Returns the form chosen,
    the held-out score of each form tried, and the chosen form fitted on all blocks."""
    if form not in ("auto", *FORMS):
        raise UserError(f"form {form!r} not allowed; allowed: auto, {', '.join(FORMS)}")
    options = {f: FitOptions(form=f, macs_per_s=macs_per_s, bandwidth_gb_s=bandwidth_gb_s, precision=precision)
               for f in (FORMS if form == "auto" else (form,))}
    held = {f: cross_validate(blocks, o, seed=seed) for f, o in options.items()}
    chosen = min(options, key=lambda f: held[f].mdape)
    return chosen, held, fit_model(blocks, options[chosen])
