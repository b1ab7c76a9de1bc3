"""Fit a device's latency model (efficiency per compute kind, bandwidth efficiency, per-op
overheads) to measured per-block latencies, and report its cross-validated error.

Measurements come as HW-NAS-Bench's per-block table (``{"<device>_latency": {key: ms}}``), whose
keys name FBNet-space blocks (:mod:`nas.hwnasbench`); each block is built, BN folded, and priced
layer by layer (:mod:`nas.layers`, :mod:`nas.latency_model`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import spearmanr
from torch import nn

from nas.blocks import ConvBnAct, FBNetBlock, skip
from nas.errors import UserError
from nas.latency_model import COMPUTE_KINDS, DATA_KINDS, DeviceModel, predict
from nas.layers import Layer, module_layers

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

    def device(self, *, macs_per_s: float, bandwidth_gb_s: float) -> DeviceModel:
        """The fitted model on the peak and bandwidth it was fitted against."""
        return DeviceModel(macs_per_s={"fp32": macs_per_s}, bandwidth_gb_s=bandwidth_gb_s, efficiency=self.efficiency,
                           bandwidth_efficiency=self.bandwidth_efficiency, overhead_ms=self.overhead_ms,
                           fuses_activations=self.fuses_activations)


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
                    **{k: "data" for k in DATA_KINDS if k != "shuffle"}}
_GROUPS = sorted(set(_OVERHEAD_GROUPS.values()))


def unseen_kinds(blocks: list[BlockMeasurement]) -> list[str]:
    """Data-movement kinds absent from the blocks (priced with the shared data overhead)."""
    seen = {layer.kind for b in blocks for layer in b.layers}
    return sorted(k for k in DATA_KINDS if k not in seen)


def _check_identifiable(blocks: list[BlockMeasurement]) -> None:
    seen = {_OVERHEAD_GROUPS.get(layer.kind) for b in blocks for layer in b.layers}
    missing = [g for g in _GROUPS if g not in seen]
    if missing:
        raise UserError(f"the measurements have no {', '.join(missing)} layers, so their parameters cannot be "
                        f"fitted; measure blocks that contain them")


def _device(theta: np.ndarray, macs_per_s: float, bandwidth_gb_s: float, fuses_activations: bool) -> DeviceModel:
    effs = np.exp(theta[:len(COMPUTE_KINDS)])
    group_ms = dict(zip(_GROUPS, map(float, theta[len(COMPUTE_KINDS) + 1:])))
    overheads = {kind: group_ms[group] for kind, group in _OVERHEAD_GROUPS.items()}
    return DeviceModel(macs_per_s={"fp32": macs_per_s}, bandwidth_gb_s=bandwidth_gb_s,
                       efficiency=dict(zip(COMPUTE_KINDS, map(float, effs))),
                       bandwidth_efficiency=float(np.exp(theta[len(COMPUTE_KINDS)])), overhead_ms=overheads,
                       fuses_activations=fuses_activations)


def fit(blocks: list[BlockMeasurement], *, macs_per_s: float, bandwidth_gb_s: float,
        fuses_activations: bool = True) -> Fit:
    """Least squares on log latency; efficiencies in (0, 1], overheads >= 0 (one per compute kind,
    shuffle, and one shared by the other data-movement ops). Peaks are the measured device's
    datasheet figures. Parameters of kinds absent from ``blocks`` stay at their start values:
    fine for scoring such blocks, not for a profile (calibrate_profile refuses those)."""
    n_eff, n_over = len(COMPUTE_KINDS) + 1, len(_GROUPS)
    measured = np.log([b.latency_ms for b in blocks])

    def residuals(theta: np.ndarray) -> np.ndarray:
        device = _device(theta, macs_per_s, bandwidth_gb_s, fuses_activations)
        return np.log([max(predict(b.layers, device).total_ms, 1e-9) for b in blocks]) - measured

    lower = np.array([np.log(1e-4)] * n_eff + [0.0] * n_over)
    upper = np.array([0.0] * n_eff + [np.inf] * n_over)
    # The max() in the model makes the objective non-smooth: start from a few efficiency levels
    # and keep the best local optimum.
    runs = [least_squares(residuals, np.array([np.log(e0)] * n_eff + [0.01] * n_over), bounds=(lower, upper),
                          x_scale="jac") for e0 in (0.03, 0.3)]
    theta = min(runs, key=lambda r: r.cost).x
    device = _device(theta, macs_per_s, bandwidth_gb_s, fuses_activations)
    return Fit(efficiency=device.efficiency, bandwidth_efficiency=device.bandwidth_efficiency,
               overhead_ms=device.overhead_ms, fuses_activations=fuses_activations)


def score(blocks: list[BlockMeasurement], device: DeviceModel) -> Score:
    measured = np.array([b.latency_ms for b in blocks])
    predicted = np.array([predict(b.layers, device).total_ms for b in blocks])
    ape = np.abs(predicted / measured - 1)
    return Score(n=len(blocks), mdape=float(np.median(ape)), within_10pct=float(np.mean(ape <= 0.10)),
                 spearman=float(spearmanr(predicted, measured).statistic))


def cross_validate(blocks: list[BlockMeasurement], *, macs_per_s: float, bandwidth_gb_s: float,
                   fuses_activations: bool = True, seed: int = 0) -> Score:
    """Fit on a seeded half of the blocks, score on the other half."""
    order = np.random.default_rng(seed).permutation(len(blocks))
    half = len(blocks) // 2
    train = [blocks[i] for i in order[:half]]
    test = [blocks[i] for i in order[half:]]
    fitted = fit(train, macs_per_s=macs_per_s, bandwidth_gb_s=bandwidth_gb_s, fuses_activations=fuses_activations)
    return score(test, fitted.device(macs_per_s=macs_per_s, bandwidth_gb_s=bandwidth_gb_s))


def calibrate_profile(profile_file: Path, table: dict[str, dict[str, float]], metric: str, *, out: Path,
                      precision: str = "fp32", seed: int = 0) -> tuple[Score, Score]:
    """Fit ``profile_file``'s latency model to ``metric`` of a HW-NAS-Bench-style table, with the
    profile's own datasheet peak at ``precision`` and bandwidth, and write a new version to ``out``.
    Returns (cross-validated score on held-out half, score of the final fit on all blocks)."""
    import datetime

    import yaml

    from nas.profiles import load_profile

    profile = load_profile(profile_file)
    if profile.device is None:
        raise UserError(f"{profile_file} is a measured profile; calibrate takes predicted ones")
    if precision not in profile.device.macs_per_s:
        raise UserError(f"{profile.tag} has no {precision} peak; allowed: {', '.join(profile.device.macs_per_s)}")
    peak, bandwidth = profile.device.macs_per_s[precision].value, profile.device.bandwidth_gb_s.value
    blocks, left_out = hwnasbench_measurements(table, metric)
    _check_identifiable(blocks)
    held_out = cross_validate(blocks, macs_per_s=peak, bandwidth_gb_s=bandwidth, seed=seed)
    fitted = fit(blocks, macs_per_s=peak, bandwidth_gb_s=bandwidth)
    in_sample = score(blocks, fitted.device(macs_per_s=peak, bandwidth_gb_s=bandwidth))
    raw = yaml.safe_load(profile_file.read_text())
    version = str(raw["version"])
    raw["version"] = str(int(version) + 1) if version.isdigit() else version + "+1"
    raw["model"] = {
        "efficiency": {k: round(v, 6) for k, v in fitted.efficiency.items()},
        "bandwidth_efficiency": round(fitted.bandwidth_efficiency, 6),
        "overhead_ms": {k: round(v, 6) for k, v in fitted.overhead_ms.items()},
        "fuses_activations": True,
        "fit": (f"{datetime.date.today().isoformat()}: hwnas profile calibrate, least squares on log latency "
                f"against {len(blocks)} blocks of {metric} ({left_out} zero or identity blocks left out), "
                f"{precision} peak and bandwidth from the device section. Held-out half (seed {seed}): MdAPE "
                f"{100 * held_out.mdape:.1f}%, {100 * held_out.within_10pct:.0f}% within 10%, Spearman "
                f"{held_out.spearman:.3f}; all blocks after the final fit: MdAPE {100 * in_sample.mdape:.1f}%. "
                f"Not in the data, priced with the shared data-op overhead: {', '.join(unseen_kinds(blocks))}."),
    }
    out.write_text(yaml.safe_dump(raw, sort_keys=False, width=100))
    load_profile(out)  # what was written must load
    return held_out, in_sample
