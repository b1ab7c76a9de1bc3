"""Rank agreement of a supernet, judged against the noise of training itself (issue 29).

Random budget-feasible subnetworks of the supernet's space (uniform draws, the search's budgets
checked by the search's own cost count) are each trained alone twice at the search's proxy budget
(``train``, seeds ``cfg.seed`` and ``cfg.seed + 1``: initialisation and batch order differ); the
Kendall tau between the two stand-alone runs is the noise ceiling: no score ranks a run better
than another run of the same training does, on average. The first ``finals`` of them are also
trained at the ``final`` section's budget (``FinalTrainer``, checkpointed per epoch, so a killed
run resumes). Every result is cached per architecture in the workspace; stages run in separate
processes (``--seed-index``) share nothing but those files.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from nas.core.config import load_search_config
from nas.cost.costs import count_costs
from nas.search.on_supernet import searched_space
from nas.search.study import load_splits
from nas.space.arch import ArchSpec
from nas.space.builder import build
from nas.data.splits import Splits
from nas.supernet.inherit import accuracy, recalibrate_bn
from nas.supernet.net import Supernet
from nas.supernet.space import SupernetSpace
from nas.supernet.store import load_supernet
from nas.train.final import FinalTrainer
from nas.train.trainer import train

ROOT = Path(__file__).resolve().parent.parent


def rank_subnets(cfg_path: Path, n: int) -> list[ArchSpec]:
    """The first ``n`` distinct budget-feasible uniform random subnetworks (seed 1) of the supernet's space."""
    cfg = load_search_config(cfg_path)
    splits = load_splits(cfg, cache_dir=ROOT / "runs" / ".cache")
    space = SupernetSpace(searched_space(cfg, splits), in_chs=splits.preprocess.channels,
                          num_classes=len(splits.classes))
    rng, budgets = np.random.default_rng(1), cfg.search.budgets
    specs: list[ArchSpec] = []
    while len(specs) < n:
        spec = space.random(rng)
        costs = count_costs(spec)
        if (budgets.macs and costs.macs > budgets.macs) or (budgets.peak_memory_mb and
                                                             costs.memory_mb > budgets.peak_memory_mb):
            continue
        if all(s.format() != spec.format() for s in specs):
            specs.append(spec)
    return specs


def _cached(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _add_seconds(path: Path, spec: ArchSpec, seconds: float) -> None:
    """Wall seconds of one training (one thread, beside one other training on this 2-core machine)."""
    done = _cached(path)
    done[spec.format()] = seconds
    path.write_text(json.dumps(done, indent=1))


def _each(specs: list[ArchSpec], cache: Path, label: str, fit: Callable[[int, ArchSpec], float]) -> dict[str, float]:
    """``fit(i, spec)`` (a validation accuracy) for each spec not yet in ``cache``, cached and timed
    (``<cache>_seconds.json``) one at a time; a line per spec with n/N and ETA."""
    done: dict[str, float] = _cached(cache)
    began, fitted = time.perf_counter(), 0
    for i, spec in enumerate(specs):
        if spec.format() in done:
            continue
        started = time.perf_counter()
        done[spec.format()] = fit(i, spec)
        _add_seconds(cache.with_name(f"{cache.stem}_seconds.json"), spec, time.perf_counter() - started)
        cache.write_text(json.dumps(done, indent=1))
        fitted += 1
        left = sum(s.format() not in done for s in specs)
        print(f"{label} {i + 1}/{len(specs)}: {100 * done[spec.format()]:.2f}% in {time.perf_counter() - started:.0f} s,"
              f" ETA {(time.perf_counter() - began) / fitted * left / 60:.0f} min  {spec.format()}", flush=True)
    return done


def standalone(cfg_path: Path, ws: Path, specs: list[ArchSpec], seed_index: int) -> dict[str, float]:
    """Validation accuracy of each subnetwork trained alone at the proxy budget with seed
    ``cfg.seed + seed_index``; cached per arch in standalone_<seed_index>.json."""
    cfg = load_search_config(cfg_path)
    splits = load_splits(cfg, cache_dir=ROOT / "runs" / ".cache")
    seed = cfg.seed + seed_index

    def fit(_: int, spec: ArchSpec) -> float:
        torch.manual_seed(seed)
        alone = build(spec)
        train(alone, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
              cfg=cfg.train, seed=seed)
        return accuracy(alone, splits.x_val, splits.y_val, splits.preprocess, spec.resolution)
    return _each(specs, ws / f"standalone_{seed_index}.json", f"standalone seed {seed}", fit)


def final_trained(cfg_path: Path, ws: Path, specs: list[ArchSpec]) -> dict[str, float]:
    """Validation accuracy of each subnetwork trained at the ``final`` budget (cached; each training
    checkpointed per epoch, so a killed run resumes)."""
    cfg = load_search_config(cfg_path)
    splits = load_splits(cfg, cache_dir=ROOT / "runs" / ".cache")
    (ws / "final-checkpoints").mkdir(parents=True, exist_ok=True)

    def fit(i: int, spec: ArchSpec) -> float:
        torch.manual_seed(cfg.seed)
        model = build(spec)
        trainer = FinalTrainer(ws / "final-checkpoints" / f"{i:02d}.pt", splits.x_val, splits.y_val)
        trainer(model, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=spec.resolution,
                cfg=cfg.final, seed=cfg.seed)
        return accuracy(model, splits.x_val, splits.y_val, splits.preprocess, spec.resolution)
    return _each(specs, ws / "final.json", f"final ({cfg.final.epochs} epochs)", fit)


def inherited_accuracy(net: Supernet, spec: ArchSpec, splits: Splits, *, bn_images: int, seed: int) -> float:
    """Validation accuracy of ``spec`` with ``net``'s weights, BatchNorm re-estimated (PyTorch)."""
    model = net.extract(spec)
    recalibrate_bn(model, splits.x_train, splits.preprocess, spec.resolution, n_images=bn_images, seed=seed)
    return accuracy(model, splits.x_val, splits.y_val, splits.preprocess, spec.resolution)


def inherited(cfg_path: Path, ws: Path, specs: list[ArchSpec]) -> list[dict[str, Any]]:
    """Each subnetwork's validation accuracy with the supernet's weights, BatchNorm re-estimated."""
    cfg = load_search_config(cfg_path)
    splits = load_splits(cfg, cache_dir=ROOT / "runs" / ".cache")
    sn = load_supernet(ws / "supernet" / "supernet.pt")
    rows = []
    for spec in specs:
        started = time.perf_counter()
        score = inherited_accuracy(sn.net, spec, splits, bn_images=cfg.supernet.bn_images, seed=cfg.seed)
        rows.append({"arch": spec.format(), "macs": count_costs(spec).macs, "inherited": score,
                     "inherit_seconds": time.perf_counter() - started})
    return rows


def median_seconds(ws: Path, name: str) -> float | None:
    """Median wall seconds of the trainings timed in ``<name>_seconds.json``."""
    times = list(_cached(ws / f"{name}_seconds.json").values())
    return float(np.median(times)) if times else None


def _tau(a: list[float], b: list[float]) -> float:
    return float(kendalltau(a, b).statistic)


def rank_figures(rows: list[dict[str, Any]], alone: tuple[dict[str, float], dict[str, float]],
                 final: dict[str, float], seconds: tuple[float | None, float | None]) -> dict[str, Any]:
    """The issue's keys from inherited scores, two stand-alone runs and final-trained accuracies."""
    inh = [r["inherited"] for r in rows]
    a, b = ([run[r["arch"]] for r in rows] for run in alone)
    mean_alone = [(x + y) / 2 for x, y in zip(a, b)]
    tau_a, tau_b, ceiling = _tau(inh, a), _tau(inh, b), _tau(a, b)
    tau = (tau_a + tau_b) / 2  # each against one run, as the ceiling compares one run with another
    with_final = [r for r in rows if r["arch"] in final]
    return {
        "standalone_seconds_median": seconds[0], "final_seconds_median": seconds[1],
        "subnets": len(rows), "kendall_tau": tau, "kendall_tau_seed_a": tau_a, "kendall_tau_seed_b": tau_b,
        "kendall_tau_vs_standalone_mean": _tau(inh, mean_alone), "noise_ceiling_tau": ceiling,
        "tau_ratio": tau / ceiling if ceiling > 0 else float("nan"),
        "spearman": float((spearmanr(inh, a).statistic + spearmanr(inh, b).statistic) / 2),
        "noise_ceiling_spearman": float(spearmanr(a, b).statistic),
        "kendall_p_seed_a": float(kendalltau(inh, a).pvalue),
        "inherited_mean": float(np.mean(inh)), "standalone_mean": float(np.mean(mean_alone)),
        "standalone_seed_gap_mean": float(np.mean(np.abs(np.subtract(a, b)))),
        "kendall_tau_final": (_tau([r["inherited"] for r in with_final], [final[r["arch"]] for r in with_final])
                              if len(with_final) >= 3 else None),
        "kendall_tau_final_standalone": (_tau([alone[0][r["arch"]] for r in with_final],
                                              [final[r["arch"]] for r in with_final])
                                         if len(with_final) >= 3 else None),
        "final_subnets": len(with_final),
        "final_mean": float(np.mean([final[r["arch"]] for r in with_final])) if with_final else None,
        "inherit_seconds_median": float(np.median([r["inherit_seconds"] for r in rows])),
    }
