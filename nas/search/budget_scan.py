"""Budgets that explain themselves: the space priced on the target before the first trial, and why
a front ended empty.

Before training anything, :func:`scan_budgets` prices networks of the space exactly as the search's
gate will (:mod:`nas.search.evaluate`: the dense network at the search's precision, latency from the
search's source): the cheapest and the largest the space offers for each block kind (every numeric
choice at its lowest or highest) and a seeded random sample. :meth:`BudgetScan.impossible` names a
budget that no priced network meets (the search stops with that line before training), and
:meth:`BudgetScan.notes` says for every budget where it falls in the space's range (a budget above
every network never binds), with the prediction's caveat. :func:`explain_empty_front` says which
budget bound and which candidate came closest when a run ends with no feasible trial.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from nas.core.config import Budgets, SearchConfig
from nas.core.vocab import BUDGET_KEYS
from nas.cost.costs import count_costs
from nas.cost.layers import layer_table
from nas.data.splits import Splits
from nas.hardware.latency_source import latency_source
from nas.hardware.pricing import predict_on_profiles, price
from nas.hardware.profiles import HardwareProfile
from nas.search.evaluate import artifact_precision
from nas.space.arch import ArchSpec
from nas.space.builder import build
from nas.space.sampler import SearchSpace

log = logging.getLogger(__name__)
RANDOM_SAMPLES = 24
MEASURED_SLACK = 1.25  # a measured floor refuses a budget only when it is this many times the budget
_UNITS = {"latency_ms": " ms", "peak_memory_mb": " MB", "macs": ""}


def _show(key: str, value: float) -> str:
    return f"{value / 1e6:.3g}M" if key == "macs" else f"{value:.4g}{_UNITS[key]}"


class _Extreme:
    """A chooser taking one block kind where allowed (or the kind ``fixed`` names for a stage) and
    every numeric choice at the end that makes the network smallest (``lowest``) or largest: more
    groups make a grouped conv cheaper, every other number costlier."""

    def __init__(self, kind: str, lowest: bool, fixed: dict[str, str] | None = None, *,
                 fewest_groups: bool = False) -> None:
        self.kind, self.lowest, self.fixed, self.fewest_groups = kind, lowest, fixed or {}, fewest_groups

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        if name in self.fixed and self.fixed[name] in choices:
            return self.fixed[name]
        if name.endswith(".block"):
            return self.kind if self.kind in choices else choices[0]
        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
            small = max(choices) if name.endswith(".groups") and not self.fewest_groups else min(choices)
            large = min(choices) if name.endswith(".groups") else max(choices)
            return small if self.lowest else large
        return choices[0]


class _Random:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


@dataclass(frozen=True)
class Priced:
    """One network of the space as the gate sees it."""

    arch: str
    values: dict[str, float]  # budget key -> value
    caveat: str | None = None  # the latency prediction's caveat (EXTRAPOLATED ...)


@dataclass(frozen=True)
class BudgetScan:
    """Networks of the space priced on the target, and what that says of the budgets."""

    target: str  # e.g. "raspberry-pi4@3 fp32 (predicted)"
    priced: tuple[Priced, ...]
    run_overhead_ms: float | None  # the profile's fixed per-inference term, when predicted

    def lowest(self, key: str) -> Priced | None:
        having = [p for p in self.priced if key in p.values]
        return min(having, key=lambda p: p.values[key]) if having else None

    def highest(self, key: str) -> Priced | None:
        having = [p for p in self.priced if key in p.values]
        return max(having, key=lambda p: p.values[key]) if having else None

    def impossible(self, budgets: Budgets) -> str | None:
        """One line naming the first budget below every priced network (the floor and its cause)."""
        for key in BUDGET_KEYS:
            limit, cheapest = getattr(budgets, key), self.lowest(key)
            # a host measurement is noisy on a shared machine: refuse only 25% below it
            slack = MEASURED_SLACK if key == "latency_ms" and self.target.endswith("(measured)") else 1.0
            if limit is None or cheapest is None or cheapest.values[key] <= limit * slack:
                continue
            floor = cheapest.values[key]
            cause = ""
            if key == "latency_ms" and cheapest.caveat and "per-invocation floor" in cheapest.caveat:
                cause = ", the device's per-invocation floor (device.min_latency_ms of the profile), paid by any network"
            elif key == "latency_ms" and self.run_overhead_ms:
                cause = (f", of which {self.run_overhead_ms:.3g} ms is the profile's fixed per-inference term "
                         "(run_overhead_ms), paid by any network")
            elif key == "latency_ms":
                cause = (", measured on the untrained export of the smallest network (refused only when the budget "
                         f"is {100 * (1 - 1 / MEASURED_SLACK):.0f}% or more below it: timings are noisy)")
            return (f"search.budgets.{key} {_show(key, limit)} is below what any network of this space can meet on "
                    f"{self.target}: the cheapest of {len(self.priced)} priced ({cheapest.arch}) needs "
                    f"{_show(key, floor)}{cause}; allowed: {key} >= {_show(key, floor)}, or a space with smaller "
                    "resolutions, widths or depths")
        return None

    def notes(self, budgets: Budgets) -> list[str]:
        """A header, then one line per budget set: where it falls in the space's range, with the
        caveat of the numbers; and a line when no priced network meets all budgets together."""
        lines = []
        for key in BUDGET_KEYS:
            limit, low, high = getattr(budgets, key), self.lowest(key), self.highest(key)
            if limit is None or low is None or high is None:
                continue
            having = [p for p in self.priced if key in p.values]
            lo, hi = low.values[key], high.values[key]
            meets = sum(p.values[key] <= limit for p in having)
            verdict = ("above every priced network: it does not bind" if hi <= limit else
                       f"{meets} of {len(having)} priced networks meet it")
            extrapolated = sum(p.caveat is not None for p in having) if key == "latency_ms" else 0
            caveat = f" (EXTRAPOLATED for {extrapolated} of {len(having)})" if extrapolated else ""
            measured = " (measured: the lowest- and highest-MAC networks)" if key == "latency_ms" and \
                len(having) < len(self.priced) else ""
            lines.append(f"budget {key} {_show(key, limit)}: the space spans {_show(key, lo)} to {_show(key, hi)}"
                         f"{caveat}{measured}; {verdict}")
        if not lines:
            return []
        together = sum(all(p.values.get(k, 0) <= getattr(budgets, k) for k in BUDGET_KEYS
                           if getattr(budgets, k) is not None) for p in self.priced)
        if together == 0 and self.impossible(budgets) is None:
            lines.append(f"no priced network meets all budgets together (of {len(self.priced)}); expect most "
                         "candidates to be rejected before training")
        return [f"budgets priced on {self.target} for {len(self.priced)} networks of the space (its smallest and "
                "largest per block kind, and a random sample), as the search gates candidates:", *lines]


def _cheapest_mix(space: SearchSpace, kinds: Sequence[str]) -> ArchSpec:
    """The smallest network when stages may differ in kind: each stage in turn takes the kind that
    gives the fewest MACs, every number at its smallest (a greedy pass; a mix of kinds can be
    cheaper than any single kind throughout)."""
    fixed: dict[str, str] = {}
    for index, stage in enumerate(space.cfg.stages):
        options = stage.block_types or space.cfg.block_types
        name = f"s{index}.block"
        fixed[name] = min(options, key=lambda kind: count_costs(space.sample(
            _Extreme(kinds[0], True, {**fixed, name: kind}))).macs)
    return space.sample(_Extreme(kinds[0], True, fixed))


def _specs(space: SearchSpace, kinds: Sequence[str], seed: int, samples: int) -> list[ArchSpec]:
    specs = [space.sample(_Extreme(kind, lowest)) for kind in kinds for lowest in (True, False)]
    # fewer MACs (more groups) is not always less time: a device may run dense convs faster
    specs += [space.sample(_Extreme(kind, True, fewest_groups=True)) for kind in kinds]
    specs.append(_cheapest_mix(space, kinds))
    rng = random.Random(seed)
    specs += [space.sample(_Random(rng)) for _ in range(samples)]
    unique: dict[str, ArchSpec] = {}
    for spec in specs:
        unique.setdefault(spec.format(), spec)
    return list(unique.values())


def scan_budgets(cfg: SearchConfig, profile: HardwareProfile, splits: Splits, *,
                 samples: int = RANDOM_SAMPLES) -> BudgetScan:
    """Price the space's extremes and a random sample on ``profile`` as the gate will. Latency is
    predicted for every network on a predicted profile; on a measured one (the host) it is measured
    on the untrained exports of the lowest- and highest-MAC networks only, when a latency budget is set."""
    precision = artifact_precision(cfg, profile)
    source = latency_source(profile, precision=precision, budget_quantile=cfg.search.budget_quantile)
    space = SearchSpace(cfg.space, in_chs=splits.preprocess.channels, num_classes=len(splits.classes))
    kinds = sorted({k for s in cfg.space.stages for k in (s.block_types or cfg.space.block_types)})
    priced: list[Priced] = []
    specs = _specs(space, kinds, cfg.seed, samples)
    for spec in specs:
        model = build(spec)
        costs = count_costs(spec, precision=precision, model=model)
        values = {"macs": float(costs.macs), "peak_memory_mb": round(costs.memory_mb, 6)}
        caveat = None
        if source.kind == "predicted":
            mine = predict_on_profiles(spec, model, [profile], precision=precision, target=profile)[profile.name]
            if mine.ms is not None:
                values["latency_ms"], caveat = mine.ms * source.budget_ratio, mine.caveat
        priced.append(Priced(spec.format(), values, caveat))
    if source.kind == "measured" and cfg.search.budgets.latency_ms is not None:
        priced = _measure_extremes(priced, profile, precision, {s.format(): s for s in specs})
    fitted = (profile.model or {}).get(precision) if source.kind == "predicted" else None
    target = f"{profile.tag} {precision} ({source.kind})"
    log.info("budget scan: %d networks priced on %s", len(priced), target)
    return BudgetScan(target, tuple(priced), fitted.run_overhead_ms if fitted is not None else None)


def _measure_extremes(priced: list[Priced], profile: HardwareProfile, precision: str,
                      specs: Mapping[str, ArchSpec]) -> list[Priced]:
    by_macs = sorted(priced, key=lambda p: p.values["macs"])
    out = list(priced)
    for chosen in {by_macs[0].arch, by_macs[-1].arch}:
        measured = price(specs[chosen], profile, precision=precision).latency_ms
        if measured is not None:
            index = next(i for i, p in enumerate(out) if p.arch == chosen)
            out[index] = Priced(chosen, {**out[index].values, "latency_ms": measured})
    return out


def explain_empty_front(trials: pd.DataFrame, budgets: Mapping[str, float | None]) -> str | None:
    """Why no trial is feasible: the budget most candidates exceeded and the candidate closest to
    meeting every budget (the smallest largest relative excess); None when nothing was priced."""
    set_budgets = {k: v for k, v in budgets.items() if v is not None and k in trials}
    if trials.empty or not set_budgets:
        return None
    excess = pd.DataFrame({k: trials[k] / v - 1 for k, v in set_budgets.items()}).dropna(how="all")
    if excess.empty:
        return None
    binding = str((excess > 0).sum().idxmax())
    worst = excess.max(axis=1).to_numpy()
    closest = trials.loc[excess.index].iloc[int(worst.argmin())]
    over = "; ".join(f"{k} {_show(k, float(closest[k]))} > {_show(k, float(v))}" for k, v in set_budgets.items()
                     if float(closest[k]) > v)
    return (f"no feasible trial: {int((excess[binding] > 0).sum())} of {len(excess)} priced candidates exceed "
            f"search.budgets.{binding} {_show(binding, float(set_budgets[binding]))}; closest: trial "
            f"{int(closest['trial'])} ({over or 'within budgets, but failed'})")


def coverage_note(cfg: SearchConfig, profile: HardwareProfile, splits: Splits) -> str | None:
    """One line when the target profile was calibrated on networks far (over 2x) from the space's
    smallest or largest: its predictions there are extrapolations, and what to do about it."""
    precision = artifact_precision(cfg, profile)
    fitted = (profile.model or {}).get(precision) if profile.kind == "predicted" else None
    if fitted is None or not fitted.mmac_range:
        return None
    space = SearchSpace(cfg.space, in_chs=splits.preprocess.channels, num_classes=len(splits.classes))
    kinds = sorted({k for s in cfg.space.stages for k in (s.block_types or cfg.space.block_types)})
    mmacs = [sum(l.macs for l in layer_table(spec)) / 1e6 for spec in _specs(space, kinds, cfg.seed, 0)]
    lo, hi = fitted.mmac_range
    if all(lo / 2 <= m <= 2 * hi for m in mmacs):
        return None
    floor = profile.device.min_latency_ms if profile.device is not None else None
    raised = f", raised to its {floor.value:g} ms per-invocation floor where below it" if floor is not None else ""
    return (f"profile {profile.tag} {precision} was calibrated on networks of {lo:.3g}-{hi:.3g} M MACs; this space "
            f"spans {min(mmacs):.3g}-{max(mmacs):.3g} M MACs, so its latencies are EXTRAPOLATED{raised}; to price it "
            f"from data, time networks of this size on the device and fit them: hwnas profile calibrate "
            f"{profile.name} --networks YOUR_TIMINGS.csv")
