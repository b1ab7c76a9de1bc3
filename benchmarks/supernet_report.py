"""Figures and markdown of the supernet benchmark (benchmarks/supernet.py).

Costs are counted as a user pays them: a search of ``n`` candidates on the supernet costs the
supernet's training (once for every device profile searched from it, so amortised over them) plus
``n`` times one candidate's inherit, BatchNorm re-estimation, export, measurement and records; a
per-trial search costs ``n`` times one candidate's training (at the proxy budget, or at the
``final`` budget for scores that need no retraining) plus the same export and measurement.
"""
from __future__ import annotations

import os
from typing import Any

TARGETS = (("kendall_tau", ">= 0.6", lambda v: v >= 0.6), ("tau_ratio", ">= 0.8", lambda v: v >= 0.8),
           ("mean_gap_points", "<= 5", lambda v: v <= 5))


def cost_figures(out: dict[str, Any]) -> dict[str, Any]:
    """Candidates per hour and seconds to a front, from the measured stages."""
    rank, train_s = out["rank"], out["train"]["train_seconds"]
    if "search" not in out:
        return {}
    n = out["search"]["complete"]
    per_candidate = out["search"]["wall_seconds"] / max(1, n)
    overhead = max(0.0, per_candidate - rank["inherit_seconds_median"])  # export, measurement, records
    profiles = 1 + sum(1 for k in out if k.startswith("device_"))
    proxy = rank["standalone_seconds_median"] + overhead
    final = (rank["final_seconds_median"] + overhead) if rank.get("final_seconds_median") else None
    front = {"supernet_one_profile": train_s + n * per_candidate,
             "supernet_amortised": train_s / profiles + n * per_candidate,
             "per_trial_proxy": n * proxy, "per_trial_final": n * final if final else None}
    return {"front_candidates": n, "profiles_sharing_supernet": profiles,
            "seconds_per_candidate_supernet": per_candidate, "seconds_per_candidate_proxy": proxy,
            "seconds_per_candidate_final": final, "seconds_to_front": front,
            "candidates_per_hour": {k: 3600 * n / v for k, v in front.items() if v}}


def figures(out: dict[str, Any]) -> dict[str, Any]:
    rank = out["rank"]
    f: dict[str, Any] = {**rank, "mean_gap_points": 100 * (rank["standalone_mean"] - rank["inherited_mean"]),
                         "supernet": out["train"], **cost_figures(out)}
    if "search" in out:
        f["search"] = out["search"]
    if out.get("finals"):
        f["finals"] = out["finals"]
    return f


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = ["# Supernet benchmark", "", "`.venv/bin/python benchmarks/supernet.py [--data cifar10] [--rank-only]`; "
             f"{os.cpu_count()} CPU cores. Stand-alone and final trainings ran two at a time, one thread each; every "
             "timing here was taken while other stages of this benchmark shared the two cores, so read seconds and "
             "candidates per hour as rough (their ratios ran under the same load). `kendall_tau` is the mean of "
             "the inherited scores' tau with each stand-alone run, as the ceiling compares one run with another. "
             "`n/a` for the final budget: those trainings (checkpointed, resumable with `--standalone-only "
             "--seed-index 2`) did not fit this session.", "",
             "| figure | target | " + " | ".join(results) + " |", "|---|---|" + "---|" * len(results)]
    for key, target, ok in TARGETS:
        lines.append(f"| {key} | {target} | " + " | ".join(
            f"{r[key]:.3f} ({'met' if ok(r[key]) else 'missed'})" for r in results.values()) + " |")
    for key in ("noise_ceiling_tau", "kendall_tau_seed_a", "kendall_tau_seed_b", "kendall_tau_vs_standalone_mean",
                "spearman", "noise_ceiling_spearman", "inherited_mean", "standalone_mean", "standalone_seed_gap_mean",
                "kendall_tau_final", "kendall_tau_final_standalone", "final_subnets", "final_mean", "subnets",
                "standalone_seconds_median", "final_seconds_median", "inherit_seconds_median"):
        lines.append(f"| {key} | | " + " | ".join(_fmt(r.get(key)) for r in results.values()) + " |")
    for data, r in results.items():
        sn = r["supernet"]
        lines += ["", f"## {data}", "",
                  f"Supernet: {sn['epochs']} epochs, {sn['train_seconds']:.0f} s of training, {sn['weights'] / 1e6:.2f} M "
                  f"weights; inherited validation accuracy (PyTorch, BatchNorm re-estimated): largest "
                  f"{100 * sn['val_accuracy_pytorch']['largest']:.2f}%, smallest "
                  f"{100 * sn['val_accuracy_pytorch']['smallest']:.2f}%.", ""]
        if "seconds_to_front" in r:
            lines += [f"Cost of a front of {r['front_candidates']} candidates (the supernet search's), seconds: "
                      + ", ".join(f"{k} {v:.0f}" for k, v in r["seconds_to_front"].items() if v)
                      + "; candidates per hour: " + ", ".join(f"{k} {v:.0f}" for k, v in r["candidates_per_hour"].items())
                      + f" (supernet training amortised over {r['profiles_sharing_supernet']} profiles).", ""]
        else:
            lines += ["Searches on this supernet: not run (`--rank-only`).", ""]
    return "\n".join(lines) + "\n"
