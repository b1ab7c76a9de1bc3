"""Fit a device's latency model (efficiency per compute kind, bandwidth efficiency, per-op
overheads) to measured per-block latencies, and report its cross-validated error.

Measurements come as HW-NAS-Bench's per-block table (``{"<device>_latency": {key: ms}}``), whose
keys name FBNet-space blocks (:mod:`nas.hardware.hwnasbench`); each block is built, BN folded, and priced
layer by layer (:mod:`nas.cost.layers`, :mod:`nas.hardware.latency_model`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import spearmanr
from torch import nn

from nas.space.blocks import ConvBnAct, FBNetBlock, skip
from nas.core.errors import UserError
from nas.hardware.latency_model import (
    BLOCKABLE_KINDS,
    BLOCKED_KINDS,
    COMPUTE_KINDS,
    DATA_KINDS,
    FORMS,
    DeviceModel,
    Op,
    linear_units,
    plan,
    predict,
)
from nas.cost.layers import Layer, module_layers

_FIELDS = re.compile(r"([A-Za-z]+?)(\d+)")


@dataclass(frozen=True)
class BlockMeasurement:
    key: str
    layers: list[Layer]
    latency_ms: float


@dataclass(frozen=True)
class Fit:
    efficiency: dict[str, float]
    bandwidth_efficiency: float
    overhead_ms: dict[str, float]
    fuses_activations: bool = True
    run_overhead_ms: float = 0.0
    layout_block: int = 0
    form: str = "roofline"
    linear_terms: dict[str, dict[str, float]] = field(default_factory=dict)
    runtime: str = "generic"
    at_bandwidth: tuple[str, ...] = ()  # linear: data kinds the data lacks, their bytes priced at peak bandwidth

    def device(self, *, macs_per_s: float, bandwidth_gb_s: float, precision: str = "fp32") -> DeviceModel:
        """The fitted model on the peak and bandwidth it was fitted against."""
        return DeviceModel(macs_per_s={precision: macs_per_s}, bandwidth_gb_s=bandwidth_gb_s,
                           efficiency=self.efficiency, bandwidth_efficiency=self.bandwidth_efficiency,
                           overhead_ms=self.overhead_ms, fuses_activations=self.fuses_activations,
                           run_overhead_ms=self.run_overhead_ms, layout_block=self.layout_block, form=self.form,
                           linear_terms=self.linear_terms, runtime=self.runtime)

    def carried(self, peak_ratio: float, bandwidth_ratio: float) -> Fit:
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


@dataclass(frozen=True)
class Score:
    n: int
    mdape: float  # median absolute percentage error
    within_10pct: float
    spearman: float


def _fields(key: str) -> dict[str, int]:
    return {name: int(value) for name, value in _FIELDS.findall(key.split("_", 1)[1].replace("_", ""))}


def block_module(key: str) -> tuple[nn.Module, tuple[int, ...]]:
    """The module and input shape a HW-NAS-Bench key names (ConvBlock, Skip, ConvNorm, AvgP, FC)."""
    kind, f = key.split("_", 1)[0], _fields(key)
    if kind == "ConvBlock":
        return (FBNetBlock(f["Cin"], f["Cout"], k=f["kernel"], stride=f["stride"], exp_ratio=f["exp"],
                           groups=f["group"]), (1, f["Cin"], f["H"], f["W"]))
    if kind == "Skip":
        return skip(f["Cin"], f["Cout"], stride=f["stride"]), (1, f["Cin"], f["H"], f["W"])
    if kind == "ConvNorm":
        return (ConvBnAct(f["Cin"], f["Cout"], f["kernel"], stride=f["stride"], groups=f["group"]),
                (1, f["Cin"], f["H"], f["W"]))
    if kind == "AvgP":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1)), (1, f["Cin"], f["H"], f["W"])  # a module op, not F.*
    if kind == "FC":
        return nn.Sequential(nn.Linear(f["Cin"], f["Cout"])), (1, f["Cin"])
    raise UserError(f"unknown HW-NAS-Bench block {key!r}; allowed kinds: ConvBlock, Skip, ConvNorm, AvgP, FC")


def hwnasbench_measurements(table: dict[str, dict[str, float]], metric: str) -> tuple[list[BlockMeasurement], int]:
    """Blocks of ``metric`` with a positive figure and at least one executed op; returns them and
    how many were left out (zeros, as the FPGA table has for non-conv blocks, and identity skips)."""
    if metric not in table:
        raise UserError(f"metric {metric!r} not in the table; allowed: {', '.join(sorted(table))}")
    kept, left_out = [], 0
    for key, ms in sorted(table[metric].items()):
        module, shape = block_module(key)
        layers = module_layers(module, shape)
        if ms > 0 and layers:
            kept.append(BlockMeasurement(key, layers, float(ms)))
        else:
            left_out += 1
    return kept, left_out


# Kinds that get an overhead of their own; the other data-movement kinds share "data", so kinds
# that calibration blocks lack (FBNet blocks have no concat, max pool or slice) are still priced,
# with an overhead fitted on the data ops that do occur (add, global pooling).
_OVERHEAD_GROUPS = {**{k: k for k in COMPUTE_KINDS}, "shuffle": "shuffle",
                    **{k: "data" for k in DATA_KINDS if k != "shuffle"}, "act": "data"}
_GROUPS = sorted(set(_OVERHEAD_GROUPS.values()))


def unseen_kinds(blocks: list[BlockMeasurement]) -> list[str]:
    """Data-movement kinds absent from the blocks (priced with the shared data overhead)."""
    seen = {layer.kind for b in blocks for layer in b.layers}
    return sorted(k for k in DATA_KINDS if k not in seen)


def _check_identifiable(blocks: list[BlockMeasurement], assume: dict[str, str] | None = None) -> None:
    seen = {_OVERHEAD_GROUPS.get(layer.kind) for b in blocks for layer in b.layers}
    for kind, like in (assume or {}).items():
        if kind not in COMPUTE_KINDS or kind in seen:
            raise UserError(f"--assume {kind}={like}: {kind!r} not allowed; allowed: compute kinds the measurements "
                            f"lack ({', '.join(k for k in COMPUTE_KINDS if k not in seen) or 'none'})")
        if like not in seen or like not in COMPUTE_KINDS:
            raise UserError(f"--assume {kind}={like}: {like!r} not allowed; allowed: compute kinds the measurements "
                            f"have ({', '.join(k for k in COMPUTE_KINDS if k in seen)})")
    missing = [g for g in _GROUPS if g not in seen and g not in (assume or {})]
    if missing:
        raise UserError(f"the measurements have no {', '.join(missing)} layers, so their parameters cannot be "
                        f"fitted; measure blocks that contain them, or for a compute kind state an assumption "
                        f"(--assume {missing[0]}=pwconv: it runs with that kind's fitted parameters)")


def _with_assumptions(fitted: Fit, assume: dict[str, str]) -> Fit:
    """``fitted`` with each assumed kind at the efficiency, overhead and linear terms of the kind it
    is assumed to run like."""
    return replace(fitted, efficiency={**fitted.efficiency, **{k: fitted.efficiency[v] for k, v in assume.items()}},
                   overhead_ms={**fitted.overhead_ms, **{k: fitted.overhead_ms[v] for k, v in assume.items()}},
                   linear_terms={**fitted.linear_terms, **{k: dict(fitted.linear_terms[v]) for k, v in assume.items()
                                                           if v in fitted.linear_terms}})


@dataclass(frozen=True)
class _Params:
    """The fitted parameters of one fit: log-efficiencies by key, then log bandwidth efficiency,
    then overheads by group (ms, >= 0)."""

    eff_keys: tuple[str, ...]
    groups: tuple[str, ...]
    macs_per_s: float
    bandwidth_gb_s: float
    precision: str
    fuses_activations: bool
    layout_block: int
    runtime: str

    def device(self, theta: np.ndarray) -> DeviceModel:
        n = len(self.eff_keys)
        effs = dict(zip(self.eff_keys, map(float, np.exp(theta[:n]))))
        if self.layout_block:
            for kind in BLOCKABLE_KINDS:  # a blocked kind the data lacks runs as the plain one
                effs.setdefault(f"{kind}_blocked", effs[kind])
        group_ms = dict(zip(self.groups, map(float, theta[n + 1:])))
        overheads = {kind: group_ms[group] for kind, group in _OVERHEAD_GROUPS.items()}
        if "reorder" in group_ms:
            overheads["reorder"] = group_ms["reorder"]
        return DeviceModel(macs_per_s={self.precision: self.macs_per_s}, bandwidth_gb_s=self.bandwidth_gb_s,
                           efficiency=effs, bandwidth_efficiency=float(np.exp(theta[n])), overhead_ms=overheads,
                           fuses_activations=self.fuses_activations, run_overhead_ms=group_ms.get("run", 0.0),
                           layout_block=self.layout_block, runtime=self.runtime)


def fit(blocks: list[BlockMeasurement], *, macs_per_s: float, bandwidth_gb_s: float,
        fuses_activations: bool = True, precision: str = "fp32", run_overhead: bool = False,
        layout_block: int = 0, runtime: str = "generic") -> Fit:
    """Least squares on log latency; efficiencies in (0, 1], overheads >= 0 (one per compute kind,
    shuffle, and one shared by the other data-movement ops; a layout reorder with ``layout_block``;
    a per-inference overhead with ``run_overhead``, for measurements of whole models). Peaks are
    the measured device's datasheet (or measured) figures. Parameters of kinds absent from
    ``blocks`` stay at their start values: fine for scoring such blocks, not for a profile
    (calibrate_profile refuses those)."""
    eff_keys = COMPUTE_KINDS + (BLOCKED_KINDS if layout_block else ())
    if layout_block:
        seen = {op.key for b in blocks
                for op in plan(b.layers, runtime=runtime, layout_block=layout_block, precision=precision)}
        eff_keys = COMPUTE_KINDS + tuple(k for k in BLOCKED_KINDS if k in seen)
    groups = tuple(_GROUPS) + (("reorder",) if layout_block else ()) + (("run",) if run_overhead else ())
    params = _Params(eff_keys, groups, macs_per_s, bandwidth_gb_s, precision, fuses_activations, layout_block,
                     runtime)
    n_eff, n_over = len(eff_keys) + 1, len(groups)
    measured = np.log([b.latency_ms for b in blocks])

    def residuals(theta: np.ndarray) -> np.ndarray:
        device = params.device(theta)
        return np.log([max(predict(b.layers, device, precision=precision).total_ms, 1e-9) for b in blocks]) - measured

    lower = np.array([np.log(1e-4)] * n_eff + [0.0] * n_over)
    upper = np.array([0.0] * n_eff + [np.inf] * n_over)
    # The max() in the model makes the objective non-smooth: start from a few efficiency levels
    # and keep the best local optimum.
    runs = [least_squares(residuals, np.array([np.log(e0)] * n_eff + [0.01] * n_over), bounds=(lower, upper),
                          x_scale="jac") for e0 in (0.03, 0.3)]
    device = params.device(min(runs, key=lambda r: r.cost).x)
    return Fit(efficiency=device.efficiency, bandwidth_efficiency=device.bandwidth_efficiency,
               overhead_ms=device.overhead_ms, fuses_activations=fuses_activations,
               run_overhead_ms=device.run_overhead_ms, layout_block=layout_block, runtime=runtime)


def _overhead_group(op: Op) -> str:
    """Compute ops and reorders have their own overhead per key (a blocked conv's differs from the
    plain one's); data ops share one by kind (see _OVERHEAD_GROUPS)."""
    return op.key if op.kind in COMPUTE_KINDS or op.kind == "reorder" else _OVERHEAD_GROUPS[op.kind]


# The units fit_linear fits per op key: compute, memory split by direction (reads, writes and
# weights cost differently: writes allocate, weights are reused), and a grouped conv's per-group GEMMs.
FIT_UNITS = ("mmac", "in_mb", "out_mb", "weight_mb", "group", "group_mpos")


def _linear_features(layers: list[Layer], precision: str, runtime: str, layout_block: int) -> dict[str, float]:
    """Per-unit quantities of the linear form over the planned ops: "<unit>:<key>" sums of
    FIT_UNITS and "ops:<overhead group>" op counts."""
    feats: dict[str, float] = {}
    for op in plan(layers, runtime=runtime, layout_block=layout_block, precision=precision):
        for unit, n in linear_units(op, precision).items():
            if unit in FIT_UNITS:
                feats[f"{unit}:{op.key}"] = feats.get(f"{unit}:{op.key}", 0.0) + n
        group = f"ops:{_overhead_group(op)}"
        feats[group] = feats.get(group, 0.0) + 1.0
    return feats


def fit_linear(blocks: list[BlockMeasurement], *, precision: str = "fp32", run_overhead: bool = True,
               layout_block: int = 0, macs_per_s: float = 1.0, bandwidth_gb_s: float = 1.0,
               runtime: str = "generic") -> Fit:
    """The linear form (a sum of fitted times per unit of FIT_UNITS and per op; see
    nas.hardware.latency_model): non-negative least squares on relative error, so small and large blocks
    weigh alike. ``macs_per_s`` only labels the result (the efficiencies it reports are the
    fitted rates over that peak); ``bandwidth_gb_s`` prices the bytes of data-movement kinds the
    measurements lack."""
    from scipy.optimize import nnls

    rows = [_linear_features(b.layers, precision, runtime, layout_block) for b in blocks]
    names = sorted({n for r in rows for n in r} | ({"ops:run"} if run_overhead else set()))
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
    terms |= {kind: {"in_mb": 1.0 / bandwidth_gb_s, "out_mb": 1.0 / bandwidth_gb_s} for kind in at_bandwidth}
    group_ms = {n.split(":", 1)[1]: v for n, v in values.items() if n.startswith("ops:")}
    overheads = {kind: group_ms.get(group, 0.0) for kind, group in _OVERHEAD_GROUPS.items()}
    overheads.update({key: ms for key, ms in group_ms.items() if key not in overheads and key not in ("data", "run")})
    # Efficiency as achieved share of peak, for reading the fit; the linear form predicts from the terms.
    efficiency = {k: min(1.0, 1e3 / (t["mmac"] * 1e-6 * macs_per_s * 1e3)) if t.get("mmac", 0) > 0 else 1.0
                  for k, t in terms.items() if k in COMPUTE_KINDS + BLOCKED_KINDS}
    for kind in COMPUTE_KINDS:
        efficiency.setdefault(kind, 1.0)
    return Fit(efficiency=efficiency, bandwidth_efficiency=1.0, overhead_ms=overheads,
               run_overhead_ms=group_ms.get("run", 0.0), layout_block=layout_block, form="linear",
               linear_terms=terms, runtime=runtime, at_bandwidth=at_bandwidth)


def score(blocks: list[BlockMeasurement], device: DeviceModel) -> Score:
    measured = np.array([b.latency_ms for b in blocks])
    precision = next(iter(device.macs_per_s))
    predicted = np.array([predict(b.layers, device, precision=precision).total_ms for b in blocks])
    ape = np.abs(predicted / measured - 1)
    return Score(n=len(blocks), mdape=float(np.median(ape)), within_10pct=float(np.mean(ape <= 0.10)),
                 spearman=float(spearmanr(predicted, measured).statistic))


def cross_validate(blocks: list[BlockMeasurement], *, macs_per_s: float, bandwidth_gb_s: float, seed: int = 0,
                   **fit_options: object) -> Score:
    """Fit on a seeded half of the blocks, score on the other half (``fit_options`` go to :func:`fit`)."""
    order = np.random.default_rng(seed).permutation(len(blocks))
    half = len(blocks) // 2
    train = [blocks[i] for i in order[:half]]
    test = [blocks[i] for i in order[half:]]
    fitter = fit_linear if fit_options.pop("linear", False) else fit
    fitted = fitter(train, macs_per_s=macs_per_s, bandwidth_gb_s=bandwidth_gb_s, **fit_options)  # type: ignore[arg-type]
    precision = str(fit_options.get("precision", "fp32"))
    return score(test, fitted.device(macs_per_s=macs_per_s, bandwidth_gb_s=bandwidth_gb_s, precision=precision))


def _model_section(fitted: Fit, fit_note: str) -> dict[str, object]:
    section: dict[str, object] = {
        "efficiency": {k: round(v, 6) for k, v in fitted.efficiency.items()},
        "bandwidth_efficiency": round(fitted.bandwidth_efficiency, 6),
        "overhead_ms": {k: round(v, 6) for k, v in fitted.overhead_ms.items()},
        "fuses_activations": fitted.fuses_activations,
    }
    if fitted.run_overhead_ms:
        section["run_overhead_ms"] = round(fitted.run_overhead_ms, 6)
    if fitted.form != "roofline":
        section["form"] = fitted.form
        section["linear_terms"] = {key: {unit: float(f"{v:.6g}") for unit, v in terms.items()}
                                   for key, terms in fitted.linear_terms.items()}
    if fitted.runtime != "generic":
        section["runtime"] = fitted.runtime
    if fitted.layout_block:
        section["layout_block"] = fitted.layout_block
    section["fit"] = fit_note
    return section


def _write_version(profile_file: Path, out: Path, models: dict[str, dict[str, object]],
                   device: dict[str, object] | None = None) -> None:
    """Write ``profile_file`` with the fitted ``models`` (by precision) as the next version."""
    import yaml

    from nas.hardware.profiles import load_profile

    raw = yaml.safe_load(profile_file.read_text())
    version = str(raw["version"])
    raw["version"] = str(int(version) + 1) if version.isdigit() else version + "+1"
    if device is not None:
        raw["device"] = device
    raw["model"] = {**(raw.get("model") or {}), **models}
    out.write_text(yaml.safe_dump(raw, sort_keys=False, width=100))
    load_profile(out)  # what was written must load


def _note(what: str, held_out: Score, in_sample: Score, seed: int) -> str:
    import datetime

    return (f"{datetime.date.today().isoformat()}: hwnas profile calibrate, {what}. Held-out half (seed {seed}): "
            f"MdAPE {100 * held_out.mdape:.1f}%, {100 * held_out.within_10pct:.0f}% within 10%, Spearman "
            f"{held_out.spearman:.3f}; all after the final fit: MdAPE {100 * in_sample.mdape:.1f}%.")


@dataclass(frozen=True)
class Sibling:
    """The device the measurements come from, when it is not the profile's own: its datasheet peak
    and bandwidth. Efficiencies and overheads fitted on it carry across to the profile's device,
    which keeps its own peak and bandwidth (a Jetson Nano from Jetson TX2 measurements)."""

    name: str
    macs_per_s: float
    bandwidth_gb_s: float


def fit_table(blocks: list[BlockMeasurement], *, form: str = "auto", macs_per_s: float, bandwidth_gb_s: float,
              precision: str = "fp32", seed: int = 0) -> tuple[str, dict[str, Score], Fit]:
    """Fit per-block measurements (blocks, not whole runs: no per-inference overhead) in ``form``
    (roofline, linear, or auto: both, keeping the lower held-out MdAPE). Returns the form chosen,
    the held-out score of each form tried, and the chosen form fitted on all blocks."""
    if form not in ("auto", *FORMS):
        raise UserError(f"form {form!r} not allowed; allowed: auto, {', '.join(FORMS)}")
    options = {"macs_per_s": macs_per_s, "bandwidth_gb_s": bandwidth_gb_s, "precision": precision}
    linear_options = {"run_overhead": False}
    forms = FORMS if form == "auto" else (form,)
    held = {f: cross_validate(blocks, seed=seed, **({"linear": True, **linear_options} if f == "linear" else {}),
                              **options) for f in forms}  # type: ignore[arg-type]
    chosen = min(forms, key=lambda f: held[f].mdape)
    fitted = (fit_linear(blocks, **linear_options, **options) if chosen == "linear"  # type: ignore[arg-type]
              else fit(blocks, **options))  # type: ignore[arg-type]
    return chosen, held, fitted


def calibrate_profile(profile_file: Path, table: dict[str, dict[str, float]], metric: str, *, out: Path,
                      precision: str = "fp32", seed: int = 0, sibling: Sibling | None = None,
                      assume: dict[str, str] | None = None, form: str = "auto") -> tuple[Score, Score]:
    """Fit ``profile_file``'s latency model to ``metric`` of a HW-NAS-Bench-style table, with the
    profile's own datasheet peak at ``precision`` and bandwidth (or a ``sibling``'s, whose fit
    then carries across, :meth:`Fit.carried`), and write a new version to ``out``. ``form``:
    roofline, linear, or auto (both, keeping the one with the lower held-out MdAPE). ``assume``
    maps compute kinds the table lacks to a kind it has whose fitted parameters they take. The
    fit note states all of it. Returns (cross-validated score on held-out half, score of the
    final fit on all blocks), both on the measured device."""
    from nas.hardware.profiles import load_profile

    profile = load_profile(profile_file)
    if profile.device is None:
        raise UserError(f"{profile_file} is a measured profile; calibrate takes predicted ones")
    if precision not in profile.device.macs_per_s:
        raise UserError(f"{profile.tag} has no {precision} peak; allowed: {', '.join(profile.device.macs_per_s)}")
    own_peak, own_bandwidth = profile.device.macs_per_s[precision].value, profile.device.bandwidth_gb_s.value
    peak, bandwidth = (own_peak, own_bandwidth) if sibling is None else (sibling.macs_per_s, sibling.bandwidth_gb_s)
    blocks, left_out = hwnasbench_measurements(table, metric)
    assume = assume or {}
    _check_identifiable(blocks, assume)
    options = {"macs_per_s": peak, "bandwidth_gb_s": bandwidth, "precision": precision}
    chosen, held, fitted = fit_table(blocks, form=form, seed=seed, **options)  # type: ignore[arg-type]
    fitted = _with_assumptions(fitted, assume)
    in_sample = score(blocks, fitted.device(**options))  # type: ignore[arg-type]
    if sibling is not None:
        fitted = fitted.carried(own_peak / peak, own_bandwidth / bandwidth)
    method = {"roofline": "roofline form, least squares on log latency",
              "linear": "linear form, non-negative least squares on relative error"}[chosen]
    if len(held) > 1:
        method += (" (chosen by held-out MdAPE: " + ", ".join(f"{f} {100 * sc.mdape:.1f}%" for f, sc in held.items())
                   + ")")
    carried = ("efficiencies and overheads carried across unchanged" if chosen == "roofline" else
               "carried across with times per MAC scaled by the two peaks, per byte by the two bandwidths, "
               "overheads unchanged,")
    where = ("peak and bandwidth from the device section" if sibling is None else
             f"measured on {sibling.name} and fitted with its peak {sibling.macs_per_s:.4g} MAC/s and bandwidth "
             f"{sibling.bandwidth_gb_s:g} GB/s; {carried} to this device's own peak and bandwidth (errors below "
             f"are on {sibling.name})")
    unseen = f"not in the data, priced with the shared data-op overhead: {', '.join(unseen_kinds(blocks))}"
    if fitted.at_bandwidth:
        unseen += f" and their bytes at {bandwidth:g} GB/s ({sibling.name if sibling else 'this device'}'s peak)"
    note = _note(f"{method}, against {len(blocks)} blocks of {metric} ({left_out} zero or identity blocks left "
                 f"out), {precision}, {where}; {unseen}"
                 + "".join(f"; ASSUMED, not in the data: {k} runs with the fitted parameters of {v}"
                           for k, v in assume.items()), held[chosen], in_sample, seed)
    _write_version(profile_file, out, {precision: _model_section(fitted, note)})
    return held[chosen], in_sample


def measured_blocks(data: dict[str, object], precision: str) -> list[BlockMeasurement]:
    """The whole-network measurements of a ``hwnas profile build`` file at ``precision``."""
    from nas.space.arch import parse
    from nas.cost.layers import layer_table

    rows = [r for r in data["measurements"] if r["precision"] == precision]  # type: ignore[attr-defined]
    return [BlockMeasurement(r["arch"], layer_table(parse(r["arch"])), float(r["latency_ms"])) for r in rows]


def calibrate_from_build(profile_file: Path, data: dict[str, object], *, out: Path,
                         seed: int = 0) -> dict[str, tuple[Score, Score]]:
    """Fit one model per precision of a ``hwnas profile build`` measurement file (the linear
    form with a per-inference overhead, since each measurement is a whole model run; the
    blocked layout at fp32 where the build detected one) and write a new version to ``out``.
    Returns (held-out, in-sample) scores by precision."""
    from nas.hardware.profiles import load_profile

    profile = load_profile(profile_file)
    if profile.device is None:
        raise UserError(f"{profile_file} is a measured profile; calibrate takes predicted ones")
    cond = data["conditions"]
    models, scores = {}, {}
    for precision in cond["precisions"]:  # type: ignore[index]
        if precision not in profile.device.macs_per_s:
            raise UserError(f"{profile.tag} has no {precision} peak; allowed: {', '.join(profile.device.macs_per_s)}")
        blocks = measured_blocks(data, precision)
        _check_identifiable(blocks)
        options = {"macs_per_s": profile.device.macs_per_s[precision].value, "precision": precision,
                   "bandwidth_gb_s": profile.device.bandwidth_gb_s.value, "run_overhead": True,
                   # onnxruntime's graph rules (nas.hardware.latency_model.plan): fusions, and at fp32 its
                   # NCHWc layout where the build detected one; at int8 its NHWC integer graph
                   "runtime": "onnxruntime",
                   "layout_block": int(data.get("layout_block", 0)) if precision == "fp32" else 0}  # type: ignore[arg-type]
        held_out = cross_validate(blocks, seed=seed, linear=True, **options)  # type: ignore[arg-type]
        fitted = fit_linear(blocks, **options)  # type: ignore[arg-type]
        in_sample = score(blocks, fitted.device(macs_per_s=options["macs_per_s"],  # type: ignore[arg-type]
                                                bandwidth_gb_s=options["bandwidth_gb_s"], precision=precision))
        unseen = (f"; not in the data, bytes priced at the measured bandwidth: {', '.join(fitted.at_bandwidth)}"
                  if fitted.at_bandwidth else "")
        note = _note(f"non-negative least squares (linear form) on relative error against {len(blocks)} "
                     f"networks measured by hwnas profile build on {cond['date']} ({cond['runtime']}, "  # type: ignore[index]
                     f"{cond['threads']} thread(s), {cond['repeats']} repeats, {cond['statistic']}){unseen}", held_out, in_sample, seed)  # type: ignore[index]
        models[precision] = _model_section(fitted, note)
        scores[precision] = (held_out, in_sample)
    _write_version(profile_file, out, models)
    return scores
