"""The figures of the search-efficiency benchmark from its cached replays and real runs:
benchmarks/results/search_efficiency.json, .md and .png (see benchmarks/search_efficiency.py)."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from search_stats import Point, curve, front, hypervolume, quartiles, rank_test, time_to_reach  # noqa: E402

GRID = np.linspace(0, 600, 61)


def _points(events: Sequence[dict[str, Any]], key: str = "val") -> list[tuple[float, Point]]:
    return [(e["end_s"], (e[key], e["latency_ms"], e["macs"] / 1e6)) for e in events if e["feasible"]]


def final_hv(result: dict[str, Any], ref: Point) -> float:
    """The hypervolume of every feasible trial a replay finished within its budget."""
    return hypervolume([p for _, p in _points(result["events"])], ref)


def hv_of_test_front(events: Sequence[dict[str, Any]], ref: Point) -> float:
    """The final front chosen on validation accuracy, scored with its test accuracy."""
    val = [p for _, p in _points(events)]
    test = [p for _, p in _points(events, "test")]
    return hypervolume([test[i] for i in front(val)], ref)


def strategy_figures(results: Sequence[dict[str, Any]], ref: Point, random_final: Sequence[float],
                     random_target: float, union_hv: float) -> dict[str, Any]:
    curves = np.stack([curve(_points(r["events"]), GRID, ref) for r in results])
    finals = curves[:, -1]
    q1, med, q3 = quartiles(list(finals))
    median_curve = np.median(curves, axis=0)
    reach = time_to_reach(median_curve, GRID, random_target)
    counts = pd.DataFrame([r["counts"] for r in results]).mean().round(1).to_dict()
    return {"seeds": len(results), "hv_median": med, "hv_q1": q1, "hv_q3": q3,
            "test_hv_median": float(np.median([hv_of_test_front(r["events"], ref) for r in results])),
            "regret_median": union_hv - med, "time_to_random_hv_s": reach,
            "speedup_vs_random": None if reach is None or reach == 0 else round(GRID[-1] / reach, 2),
            "p_vs_random": rank_test(list(finals), list(random_final)),
            "mean_counts": counts, "sampler_s_median": float(np.median([r["sampler_s"] for r in results])),
            "_curves": curves}


def dataset_figures(load: Callable[[str], list[dict[str, Any]]], strategies: Sequence[str], ref: Point) -> dict[str, Any]:
    results = {s: load(s) for s in strategies}
    every = [p for rs in results.values() for r in rs for _, p in _points(r["events"])]
    union_hv = hypervolume([every[i] for i in front(every)], ref)
    random_final = [curve(_points(r["events"]), GRID[-1:], ref)[0] for r in results["random"]]
    target = float(np.median(random_final))
    out = {s: strategy_figures(rs, ref, random_final, target, union_hv) for s, rs in results.items()}
    return {"reference_point": {"accuracy": ref[0], "latency_ms": ref[1], "macs_m": ref[2]},
            "union_hv": union_hv, "random_median_final_hv": target, "strategies": out}


def real_figures(table: pd.DataFrame, ref: Point) -> dict[str, Any]:
    """Final hypervolume (at 600 s) of each real run, on validation and on the test front."""
    out = {}
    for run, rows in table.groupby("run"):
        trained = rows[rows["feasible"] & rows["val_file"].notna() & (rows["end_s"] <= GRID[-1])]
        events = [{"end_s": r.end_s, "val": r.val_file, "test": r.test_file, "latency_ms": r.latency_ms,
                   "macs": r.macs, "feasible": True} for r in trained.itertuples()]
        out[str(run)] = {"hv": hypervolume([p for _, p in _points(events)], ref), "test_hv": hv_of_test_front(events, ref),
                         "trained": int(len(trained)), "rejected": int(rows["rejected"].sum())}
    return out


def plot(figures: dict[str, dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(figures), figsize=(6 * len(figures), 4.2))
    for ax, (data, fig_data) in zip(np.atleast_1d(axes), figures.items()):
        for name, s in fig_data["strategies"].items():
            if "@" in name:  # the validation replays (the real runs' conditions) stay in the tables
                continue
            curves = s["_curves"]
            q1, med, q3 = np.percentile(curves, [25, 50, 75], axis=0)
            ax.plot(GRID, med, label=f"{name} (n={s['seeds']})")
            ax.fill_between(GRID, q1, q3, alpha=0.15)
        ax.axhline(fig_data["random_median_final_hv"], color="grey", ls=":", lw=1)
        ax.axhline(fig_data["union_hv"], color="black", ls="--", lw=0.8)  # every front found, united
        ax.set_ylim(0.9 * fig_data["random_median_final_hv"], 1.01 * fig_data["union_hv"])  # where strategies differ
        ax.set_title(f"{data}: hypervolume (val) vs time, one worker, replayed")
        ax.set_xlabel("seconds")
        ax.set_ylabel("hypervolume (acc x ms x M MACs)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def strip(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures without their curves (what the JSON keeps)."""
    return json.loads(json.dumps(figures, default=lambda o: None if isinstance(o, np.ndarray) else str(o)))
