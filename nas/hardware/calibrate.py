"""Calibrate a predicted profile: fit its latency model to measurements and write the next version
of the profile file with the fit and a note of how it was fitted and its cross-validated error.

Three sources: HW-NAS-Bench's per-block tables (:func:`calibrate_profile`), whole-network
timings of ``hwnas profile build`` (:func:`calibrate_from_build`), and published whole-network
latencies (:func:`calibrate_from_networks`, fitted by :mod:`nas.hardware.network_fit`). The fitting itself is
:mod:`nas.hardware.fitting`.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from nas.core.errors import UserError
from nas.cost.layers import layer_table
from nas.hardware.fitting import (
    BlockMeasurement,
    FitOptions,
    Score,
    check_identifiable,
    cross_validate,
    fit_linear,
    fit_table,
    score,
    unseen_kinds,
    with_assumptions,
)
from nas.hardware.hwnasbench import hwnasbench_measurements
from nas.hardware.latency_model import FittedModel
from nas.hardware.network_fit import (
    FamilyScore,
    NetworkFitOptions,
    NetworkMeasurement,
    fit_networks,
    leave_one_family_out,
    predict_network,
    read_network_rows,
)
from nas.hardware.network_fit import score as network_score
from nas.hardware.profiles import HardwareProfile, load_profile
from nas.space.arch import parse


@dataclass(frozen=True)
class Sibling:
    """The device the measurements come from, when it is not the profile's own: its datasheet peak
    and bandwidth. Efficiencies and overheads fitted on it carry across to the profile's device,
    which keeps its own peak and bandwidth (a Jetson Nano from Jetson TX2 measurements)."""

    name: str
    macs_per_s: float
    bandwidth_gb_s: float


def _write_version(profile_file: Path, out: Path, models: dict[str, FittedModel]) -> None:
    """Write ``profile_file`` with the fitted ``models`` (by precision) as the next version."""
    raw = yaml.safe_load(profile_file.read_text())
    version = str(raw["version"])
    raw["version"] = str(int(version) + 1) if version.isdigit() else version + "+1"
    raw["model"] = {**(raw.get("model") or {}), **{p: m.to_section() for p, m in models.items()}}
    out.write_text(yaml.safe_dump(raw, sort_keys=False, width=100))
    load_profile(out)  # what was written must load


def _note(what: str, held_out: Score, in_sample: Score, seed: int) -> str:
    return (f"{datetime.date.today().isoformat()}: hwnas profile calibrate, {what}. Held-out half (seed {seed}): "
            f"MdAPE {100 * held_out.mdape:.1f}%, {100 * held_out.within_10pct:.0f}% within 10%, Spearman "
            f"{held_out.spearman:.3f}; all after the final fit: MdAPE {100 * in_sample.mdape:.1f}%.")


def _predicted(profile_file: Path, precision: str) -> HardwareProfile:
    profile = load_profile(profile_file)
    if profile.device is None:
        raise UserError(f"{profile_file} is a measured profile; calibrate takes predicted ones")
    if precision not in profile.device.macs_per_s:
        raise UserError(f"{profile.tag} has no {precision} peak; allowed: {', '.join(profile.device.macs_per_s)}")
    return profile


def _table_note(metric: str, blocks: list[BlockMeasurement], left_out: int, chosen: str, held: dict[str, Score],
                options: FitOptions, sibling: Sibling | None, fitted: FittedModel, assume: dict[str, str]) -> str:
    """What a per-block calibration did, for the fit note (scores are added by _note)."""
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
        unseen += (f" and their bytes at {options.bandwidth_gb_s:g} GB/s "
                   f"({sibling.name if sibling else 'this device'}'s peak)")
    return (f"{method}, against {len(blocks)} blocks of {metric} ({left_out} zero or identity blocks left "
            f"out), {options.precision}, {where}; {unseen}"
            + "".join(f"; ASSUMED, not in the data: {k} runs with the fitted parameters of {v}"
                      for k, v in assume.items()))


def calibrate_profile(profile_file: Path, table: dict[str, dict[str, float]], metric: str, *, out: Path,
                      precision: str = "fp32", seed: int = 0, sibling: Sibling | None = None,
                      assume: dict[str, str] | None = None, form: str = "auto") -> tuple[Score, Score]:
    """Fit ``profile_file``'s latency model to ``metric`` of a HW-NAS-Bench-style table, with the
    profile's own datasheet peak at ``precision`` and bandwidth (or a ``sibling``'s, whose fit
    then carries across, :meth:`FittedModel.carried`), and write a new version to ``out``.
    ``form``: roofline, linear, or auto (both, keeping the one with the lower held-out MdAPE).
    ``assume`` maps compute kinds the table lacks to a kind it has whose fitted parameters they
    take. The fit note states all of it. Returns (cross-validated score on held-out half, score of
    the final fit on all blocks), both on the measured device."""
    profile = _predicted(profile_file, precision)
    assert profile.device is not None  # _predicted checked
    own_peak, own_bandwidth = profile.device.macs_per_s[precision].value, profile.device.bandwidth_gb_s.value
    peak, bandwidth = (own_peak, own_bandwidth) if sibling is None else (sibling.macs_per_s, sibling.bandwidth_gb_s)
    blocks, left_out = hwnasbench_measurements(table, metric)
    assume = assume or {}
    check_identifiable(blocks, assume)
    chosen, held, fitted = fit_table(blocks, form=form, seed=seed, macs_per_s=peak, bandwidth_gb_s=bandwidth,
                                     precision=precision)
    fitted = with_assumptions(fitted, assume)
    options = FitOptions(form=chosen, macs_per_s=peak, bandwidth_gb_s=bandwidth, precision=precision)
    in_sample = score(blocks, options.device(fitted))
    if sibling is not None:
        fitted = fitted.carried(own_peak / peak, own_bandwidth / bandwidth)
    what = _table_note(metric, blocks, left_out, chosen, held, options, sibling, fitted, assume)
    _write_version(profile_file, out, {precision: replace(fitted, fit=_note(what, held[chosen], in_sample, seed))})
    return held[chosen], in_sample


def measured_blocks(data: dict[str, Any], precision: str) -> list[BlockMeasurement]:
    """The whole-network measurements of a ``hwnas profile build`` file at ``precision``."""
    rows = [r for r in data["measurements"] if r["precision"] == precision]
    return [BlockMeasurement(r["arch"], layer_table(parse(r["arch"])), float(r["latency_ms"])) for r in rows]


def calibrate_from_build(profile_file: Path, data: dict[str, Any], *, out: Path,
                         seed: int = 0) -> dict[str, tuple[Score, Score]]:
    """Fit one model per precision of a ``hwnas profile build`` measurement file (the linear
    form with a per-inference overhead, since each measurement is a whole model run; the
    blocked layout at fp32 where the build detected one) and write a new version to ``out``.
    Returns (held-out, in-sample) scores by precision."""
    cond = data["conditions"]
    models, scores = {}, {}
    for precision in cond["precisions"]:
        profile = _predicted(profile_file, precision)
        assert profile.device is not None  # _predicted checked
        blocks = measured_blocks(data, precision)
        check_identifiable(blocks)
        # onnxruntime's graph rules (nas.hardware.plan): fusions, and at fp32 its NCHWc layout
        # where the build detected one; at int8 its NHWC integer graph
        options = FitOptions(form="linear", macs_per_s=profile.device.macs_per_s[precision].value,
                             bandwidth_gb_s=profile.device.bandwidth_gb_s.value, precision=precision,
                             run_overhead=True, runtime="onnxruntime",
                             layout_block=int(data.get("layout_block", 0)) if precision == "fp32" else 0)
        held_out = cross_validate(blocks, options, seed=seed)
        fitted = fit_linear(blocks, options)
        in_sample = score(blocks, options.device(fitted))
        unseen = (f"; not in the data, bytes priced at the measured bandwidth: {', '.join(fitted.at_bandwidth)}"
                  if fitted.at_bandwidth else "")
        note = _note(f"non-negative least squares (linear form) on relative error against {len(blocks)} "
                     f"networks measured by hwnas profile build on {cond['date']} ({cond['runtime']}, "
                     f"{cond['threads']} thread(s), {cond['repeats']} repeats, {cond['statistic']}){unseen}",
                     held_out, in_sample, seed)
        models[precision] = replace(fitted, fit=note)
        scores[precision] = (held_out, in_sample)
    _write_version(profile_file, out, models)
    return scores


@dataclass(frozen=True)
class NetworkCalibration:
    """What ``hwnas profile calibrate --networks`` did: rows used and skipped, and the error."""

    used: int
    skipped: dict[str, int]
    families: int
    held_out: FamilyScore | None  # None: one family, nothing to leave out
    in_sample: FamilyScore


def calibrate_from_networks(profile_file: Path, rows: list[dict[str, str]], *, out: Path, precision: str,
                            data_name: str, runtime: str | None = None, scale_from: str | None = None,
                            scale_from_runtime: str | None = None) -> NetworkCalibration:
    """Fit ``profile_file``'s model at ``precision`` to whole-network latencies (rows of the
    ``--networks`` CSV measured with the profile's runtime, or ``runtime``), cross-validated
    leave-one-family-out, and write a new version to ``out`` with a note of data, counts,
    conditions and error. ``scale_from``: fit as a scaled copy of the model that that precision's
    rows (of ``scale_from_runtime``, default the same runtime) give (nas.hardware.network_fit)."""
    profile = _predicted(profile_file, precision)
    key = runtime or (profile.conditions.runtime if profile.conditions else "")
    if not key:
        raise UserError(f"{profile.tag} states no conditions.runtime; give --runtime KEY (the rows' runtime column)")
    measurements, skipped = read_network_rows(rows, runtime=key, precision=precision)
    if not measurements:
        raise UserError(f"no row of {data_name} is {key} at {precision} (skipped: {skipped}); allowed: rows whose "
                        f"runtime column is {key!r} and precision {precision!r}")
    base: list[NetworkMeasurement] = []
    if scale_from:
        base = read_network_rows(rows, runtime=scale_from_runtime or key, precision=scale_from)[0]
    options = NetworkFitOptions(precision=precision, on_chip_mb=profile.memory.on_chip_mb or 0.0,
                                host_io=bool(profile.conditions and profile.conditions.host_io),
                                gpu_terms=bool(profile.conditions and profile.conditions.gpu_terms), scale_from=scale_from)
    fitted = fit_networks(measurements, options, base)
    families = len({m.family for m in measurements})
    held = leave_one_family_out(measurements, options, base) if families >= 2 else None
    in_sample = network_score(measurements, [predict_network(fitted, m.spec, precision) for m in measurements])
    how = (f"a scaled copy (one factor and a time per inference) of the model fitted to {len(base)} {scale_from} "
           f"rows of {scale_from_runtime or key}" if scale_from else
           "non-negative least squares on relative error of network totals (linear form, shared terms)")
    error = ("not cross-validated: one family" if held is None else
             f"leave-one-family-out MdAPE {100 * held.mdape:.1f}%, {100 * held.within_20pct:.0f}% within 20%, "
             f"Spearman {held.spearman:.3f}")
    conditions = profile.describe_conditions()
    skipped_text = ", ".join(f"{v} {k}" for k, v in skipped.items()) or "none"
    note = (f"{datetime.date.today().isoformat()}: hwnas profile calibrate --networks {data_name}, {how}; "
            f"{len(measurements)} networks of {families} families measured with {key} at {precision} "
            f"({conditions}); skipped {sum(skipped.values())} rows ({skipped_text}); {error}; all after the final "
            f"fit: MdAPE {100 * in_sample.mdape:.1f}%.")
    if held is not None:  # each network predicted without its family: the error band of every prediction
        fitted = replace(fitted, held_out_ratios=tuple(m.latency_ms / p for m, p in zip(measurements, held.predicted)),
                         held_out_how=f"leave-one-family-out over {len(measurements)} networks of {families} families "
                                      f"({key}, {precision})")
    _write_version(profile_file, out, {precision: replace(fitted, fit=note)})
    return NetworkCalibration(len(measurements), skipped, families, held, in_sample)
