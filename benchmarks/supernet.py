"""Supernet benchmark: train once, search every device, against the per-trial search.

    .venv/bin/python benchmarks/supernet.py                  # quickstart data (searches/supernet.yaml)
    .venv/bin/python benchmarks/supernet.py --data cifar10   # CIFAR-10 from ../shared/data
    .venv/bin/python benchmarks/supernet.py --report-only    # rewrite the report from finished stages

Stages (each cached in runs/bench-supernet[-cifar10]/, so a killed run resumes where it stopped):
1. ``hwnas supernet train`` (timed by its own clock, resumed sessions included);
2. rank agreement: random budget-feasible subnetworks, accuracy with inherited weights (BatchNorm
   re-estimated) against the same architecture trained alone at the search's proxy budget, both on
   the validation split in PyTorch; Kendall tau;
3. ``hwnas search`` on the supernet (host CPU), timed;
4. the per-trial NSGA-II search over the same space for the same wall-clock time as 1 + 3
   (stopped with SIGTERM at the deadline: completed trials are kept);
5. ``hwnas search --profile P`` for calibrated device profiles, from the same supernet.
Hypervolumes are of the feasible complete trials' (test accuracy, cost) fronts, costs normalised by
the budget (MACs) or by the largest latency seen in either search. Writes
benchmarks/results/supernet.md, supernet.json and supernet_front_<profile>.png.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import torch
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nas.core.config import load_search_config  # noqa: E402
from nas.search.study import config_to_dict, load_splits  # noqa: E402
from results_page import record_run  # noqa: E402  (benchmarks/ is on the path when run as a script)
from supernet_rank import final_trained, inherited, rank_figures, rank_subnets, standalone  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
HWNAS = [sys.executable, "-m", "nas.cli"]
DEVICES = {"jetson-nano": None, "raspberry-pi4": None, "edgetpu": {"quantize": ["static"]}}


def _write_config(cfg: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def configs(data: str, ws: Path) -> dict[str, Path]:
    """The supernet config (searches/supernet.yaml, or its CIFAR-10 version) and its variants."""
    base = config_to_dict(load_search_config("supernet"))
    base["name"] = f"bench-supernet{'-' + data if data != 'quickstart' else ''}"
    if data == "cifar10":
        base["data"] = {"dataset": "cifar10", "dir": str(ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"),
                        "download": False, "val_fraction": 0.1}
        base["space"]["resolutions"] = [24, 28, 32]
        base["search"]["budgets"] = {"latency_ms": None, "peak_memory_mb": 2.0, "macs": 12_000_000}
    base["search"]["supernet"] = str(ws / "supernet" / "supernet.pt")
    out = {"supernet": _write_config(base, ws / "supernet.yaml")}
    per_trial = json.loads(json.dumps(base))
    per_trial["search"]["strategy"] = "per-trial"
    per_trial["search"]["population"] = 8
    out["per-trial"] = _write_config(per_trial, ws / "per-trial.yaml")
    int8 = json.loads(json.dumps(base))
    int8["compression"] = {"quantize": ["static"]}
    out["int8"] = _write_config(int8, ws / "int8.yaml")
    return out


def run(args: list[str], log: Path, deadline_s: float | None = None) -> float:
    """Run an hwnas command, its output to ``log``; SIGTERM at ``deadline_s``; wall seconds."""
    started = time.perf_counter()
    with open(log, "ab") as fh:
        proc = subprocess.Popen([*HWNAS, *args], stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
    return time.perf_counter() - started


def stage_done(ws: Path, name: str) -> dict[str, Any] | None:
    path = ws / f"{name}.done.json"
    return json.loads(path.read_text()) if path.exists() else None


def mark_done(ws: Path, name: str, value: dict[str, Any]) -> dict[str, Any]:
    (ws / f"{name}.done.json").write_text(json.dumps(value, indent=2))
    return value


def rank_agreement(cfg_path: Path, ws: Path, n: int, finals: int) -> dict[str, Any]:
    """Inherited accuracy against two stand-alone runs and the final budget (benchmarks/supernet_rank.py)."""
    specs = rank_subnets(cfg_path, n)
    alone = (standalone(cfg_path, ws, specs, 0), standalone(cfg_path, ws, specs, 1))
    final = final_trained(cfg_path, ws, specs[:finals])
    rows = inherited(cfg_path, ws, specs)
    for r in rows:
        r.update(standalone_a=alone[0][r["arch"]], standalone_b=alone[1][r["arch"]], final=final.get(r["arch"]))
    (ws / "rank.json").write_text(json.dumps(rows, indent=1))
    return rank_figures(rows, alone, final)


def trials(run_dir: Path) -> pd.DataFrame:
    table = pd.read_csv(run_dir / "trials.csv")
    return table[table["state"] == "COMPLETE"]


def hypervolume(acc: np.ndarray, cost: np.ndarray, ref_cost: float) -> float:
    """Area dominated by (accuracy up, cost down) points within cost <= ref_cost, accuracy >= 0."""
    points = sorted((c / ref_cost, a) for a, c in zip(acc, cost) if c <= ref_cost)
    area, best = 0.0, 0.0
    for i, (c, a) in enumerate(points):
        best = max(best, a)
        nxt = points[i + 1][0] if i + 1 < len(points) else 1.0
        area += best * (nxt - c)
    return area


def compare(ws: Path, budget_macs: float) -> dict[str, Any]:
    sup, per = trials(ws / "search-supernet"), trials(ws / "search-per-trial")
    sup, per = sup[sup["feasible"] == True], per[per["feasible"] == True]  # noqa: E712
    ref_lat = 1.1 * max(sup["latency_ms"].max(), per["latency_ms"].max())
    hv = {}
    for name, table in (("supernet", sup), ("per_trial", per)):
        hv[f"hv_macs_{name}"] = hypervolume(table["accuracy"].to_numpy(), table["macs"].to_numpy(), budget_macs)
        hv[f"hv_latency_{name}"] = hypervolume(table["accuracy"].to_numpy(), table["latency_ms"].to_numpy(),
                                               ref_lat)
    hv["hv_ratio_macs"] = hv["hv_macs_supernet"] / hv["hv_macs_per_trial"]
    hv["hv_ratio_latency"] = hv["hv_latency_supernet"] / hv["hv_latency_per_trial"]
    hv["best_accuracy_supernet"] = float(sup["accuracy"].max())
    hv["best_accuracy_per_trial"] = float(per["accuracy"].max())
    return hv


def plot_front(run_dir: Path, profile: str, out: Path) -> int:
    table = trials(run_dir)
    table = table[table["feasible"] == True]  # noqa: E712
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(table["latency_ms"], 100 * table["accuracy"], s=10, alpha=0.4, label="trials")
    front = pd.read_csv(run_dir / "front.csv") if (run_dir / "front.csv").exists() else table.iloc[:0]
    front = front[front["source"] == "search"] if "source" in front else front
    ax.scatter(front["latency_ms"], 100 * front["accuracy"], color="red", s=18,
               label="Pareto front (accuracy, latency, MACs)")
    kind = str(table["latency_kind"].iloc[0]) if len(table) else "?"
    ax.set(xlabel=f"latency ms ({kind}, {profile})", ylabel="test accuracy % (on the exported file)",
           title=f"one supernet, {profile}: {len(table)} feasible trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return len(front)


def stages(data: str, ws: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Run (or take from the cache) every stage; the figures of each."""
    paths = configs(data, ws)
    out: dict[str, Any] = {}
    if (done := stage_done(ws, "train")) is None:
        run(["supernet", "train", str(paths["supernet"]), "--out", str(ws / "supernet"), "--print-every", "50"],
            ws / "train.log")
        info = json.loads((ws / "supernet" / "training.json").read_text())
        done = mark_done(ws, "train", {"train_seconds": info["train_seconds"], "epochs": info["epochs"],
                                       "weights": info["weights"], "sha256": info["sha256"],
                                       "val_accuracy_pytorch": info["val_accuracy_pytorch"]})
    out["train"] = done
    out["rank"] = stage_done(ws, "rank") or mark_done(ws, "rank", rank_agreement(paths["supernet"], ws, a.subnets,
                                                                                 a.finals))
    if a.rank_only:
        return out
    if (done := stage_done(ws, "search")) is None:
        wall = run(["search", str(paths["supernet"]), "--out", str(ws / "search-supernet"), "--trials",
                    str(a.trials)], ws / "search.log")
        done = mark_done(ws, "search", {"wall_seconds": wall, "complete": len(trials(ws / "search-supernet"))})
    out["search"] = done
    if (done := stage_done(ws, "per_trial")) is None:
        budget = out["train"]["train_seconds"] + out["search"]["wall_seconds"]
        wall = run(["search", str(paths["per-trial"]), "--out", str(ws / "search-per-trial"), "--trials", "100000"],
                   ws / "per-trial.log", deadline_s=budget)
        done = mark_done(ws, "per_trial", {"wall_seconds": wall, "deadline_seconds": budget,
                                           "complete": len(trials(ws / "search-per-trial"))})
    out["per_trial"] = done
    if a.core_only:
        return out
    for profile, compression in DEVICES.items():
        if stage_done(ws, f"device_{profile}") is None:
            config = paths["int8" if compression else "supernet"]
            wall = run(["search", str(config), "--profile", profile, "--out", str(ws / f"front-{profile}"),
                        "--trials", str(a.device_trials)], ws / f"device-{profile}.log")
            mark_done(ws, f"device_{profile}", {"wall_seconds": wall})
        out[f"device_{profile}"] = stage_done(ws, f"device_{profile}")
    out["finals"] = stage_done(ws, "finals") or mark_done(ws, "finals", finals(ws, a.final_epochs, a.final_models))
    return out


def finals(ws: Path, epochs: int, models: int) -> dict[str, Any]:
    """The ``models`` most accurate front trials trained ``epochs`` epochs on the whole training
    split, from scratch and fine-tuned from their inherited weights (hwnas train --init)."""
    run_dir = ws / "search-supernet"
    front = pd.read_csv(run_dir / "front.csv")
    front = front[front["source"] == "search"].sort_values("accuracy", ascending=False).head(models)
    numbers = [str(int(n)) for n in front["trial"]]
    rows = []
    for init in ("scratch", "inherited"):
        stage = f"{init}{epochs}"
        run(["train", str(run_dir), "--trial", *numbers, "--epochs", str(epochs), "--init", init, "--stage", stage,
             "--threads", "1"],
            ws / f"finals-{init}.log")
        for number in numbers:
            metrics = json.loads((run_dir / "models" / f"{int(number):04d}" / f"final-{stage}" / "metrics.json")
                                 .read_text())
            rows.append({"trial": int(number), "init": init, "test_accuracy": metrics["test_accuracy"],
                         "proxy_test_accuracy": metrics["proxy_test_accuracy"]})
    table = pd.DataFrame(rows)
    means = table.groupby("init")["test_accuracy"].mean()
    return {"epochs": epochs, "rows": rows, "mean_scratch": float(means["scratch"]),
            "mean_inherited": float(means["inherited"])}


def figures(data: str, ws: Path, out: dict[str, Any]) -> dict[str, Any]:
    cfg = load_search_config(ws / "supernet.yaml")
    train_s, search_s = out["train"]["train_seconds"], out["search"]["wall_seconds"]
    per_rate = out["per_trial"]["complete"] / (out["per_trial"]["wall_seconds"] / 3600)
    sup_rate = out["search"]["complete"] / ((train_s + search_s) / 3600)
    inherit_s = out["rank"]["inherit_seconds_median"]
    f: dict[str, Any] = {
        "kendall_tau": out["rank"]["kendall_tau"],
        "candidates_per_hour_ratio": sup_rate / per_rate,
        "candidates_per_hour_supernet": sup_rate, "candidates_per_hour_per_trial": per_rate,
        "candidates_per_hour_ratio_search_only": out["search"]["complete"] / (search_s / 3600) / per_rate,
        "inherited_scores_per_hour_ratio": max(0.0, 3600 - train_s) / inherit_s / per_rate,
        **compare(ws, cfg.search.budgets.macs or 1.0),
        "supernet_train_seconds": train_s, "supernet_search_seconds": search_s,
        "per_trial_seconds": out["per_trial"]["wall_seconds"],
        "supernet_complete_trials": out["search"]["complete"], "per_trial_complete_trials": out["per_trial"]["complete"],
        "rank": out["rank"], "supernet": out["train"], "finals": out.get("finals"),
    }
    devices = [p for p in DEVICES if f"device_{p}" in out]
    fronts = {"cpu": plot_front(ws / "search-supernet", "cpu", RESULTS / f"supernet{_sfx(data)}_front_cpu.png")}
    for profile in devices:
        fronts[profile] = plot_front(ws / f"front-{profile}", profile, RESULTS / f"supernet{_sfx(data)}_front_{profile}.png")
    f["front_sizes"] = fronts
    f["device_search_seconds"] = {p: out[f"device_{p}"]["wall_seconds"] for p in devices}
    return f


def _sfx(data: str) -> str:
    return "" if data == "quickstart" else f"_{data}"


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = ["# Supernet benchmark", "", "`.venv/bin/python benchmarks/supernet.py [--data cifar10]`; "
             f"{os.cpu_count()} CPU cores, timings with whatever else ran on this machine (ratios, one run).", ""]
    targets = [("kendall_tau", ">= 0.6"), ("candidates_per_hour_ratio", ">= 50"), ("hv_ratio_macs", ">= 1.2"),
               ("hv_ratio_latency", ">= 1.2")]
    lines += ["| figure | target | " + " | ".join(results) + " |", "|---|---|" + "---|" * len(results)]
    for key, target in targets:
        lines.append(f"| {key} | {target} | " + " | ".join(f"{r[key]:.3f}" for r in results.values()) + " |")
    extra = ["candidates_per_hour_supernet", "candidates_per_hour_per_trial", "candidates_per_hour_ratio_search_only",
             "inherited_scores_per_hour_ratio", "best_accuracy_supernet", "best_accuracy_per_trial",
             "supernet_train_seconds", "supernet_search_seconds", "per_trial_seconds", "supernet_complete_trials",
             "per_trial_complete_trials"]
    for key in extra:
        lines.append(f"| {key} | | " + " | ".join(f"{r[key]:.4g}" for r in results.values()) + " |")
    for data, r in results.items():
        lines += ["", f"## {data}", "", f"Rank agreement on {r['rank']['subnets']} random budget-feasible subnetworks: "
                  f"Kendall tau {r['kendall_tau']:.3f} (p {r['rank']['kendall_p']:.2g}); mean validation accuracy "
                  f"inherited {100 * r['rank']['inherited_mean']:.2f}%, trained alone at the proxy budget "
                  f"{100 * r['rank']['standalone_mean']:.2f}%; median seconds to inherit, re-estimate BatchNorm and "
                  f"evaluate one: {r['rank']['inherit_seconds_median']:.2f}.",
                  "", "Per-device fronts from the one supernet (Pareto-optimal feasible trials): "
                  + ", ".join(f"{p} {n}" for p, n in r["front_sizes"].items())
                  + f"; plots supernet{_sfx(data)}_front_<profile>.png. Search seconds per device: "
                  + (", ".join(f"{p} {s:.0f}" for p, s in r["device_search_seconds"].items()) or "not run")
                  + ".", ""]
        if not r["finals"]:
            lines += ["Finals: not run for this data (`--core-only`)."]
            continue
        lines += [f"Finals ({r['finals']['epochs']} epochs on the whole training split, hwnas train) of the "
                  f"{len(r['finals']['rows']) // 2} most accurate front trials, test accuracy on the exported file: from scratch "
                  f"{100 * r['finals']['mean_scratch']:.2f}% mean, fine-tuned from inherited weights "
                  f"{100 * r['finals']['mean_inherited']:.2f}% mean.", "",
                  "| trial | start | final test accuracy % | supernet-inherited (search) % |", "|---|---|---|---|",
                  *(f"| {x['trial']} | {x['init']} | {100 * x['test_accuracy']:.2f} | "
                    f"{100 * x['proxy_test_accuracy']:.2f} |" for x in r["finals"]["rows"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("quickstart", "cifar10"), default="quickstart")
    parser.add_argument("--subnets", type=int, default=30)
    parser.add_argument("--trials", type=int, default=150, help="trials of the supernet search")
    parser.add_argument("--device-trials", type=int, default=60)
    parser.add_argument("--final-epochs", type=int, default=5, help="epochs of the scratch vs fine-tune finals")
    parser.add_argument("--final-models", type=int, default=3, help="front trials in the scratch vs fine-tune finals")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--core-only", action="store_true",
                        help="only the four headline figures: no device fronts, no finals")
    parser.add_argument("--finals", type=int, default=10, help="rank subnetworks also trained at the final budget")
    parser.add_argument("--rank-only", action="store_true", help="train the supernet and judge its rank; no searches")
    parser.add_argument("--standalone-only", action="store_true",
                        help="only train the rank subnetworks alone (independent of the supernet); with --seed-index")
    parser.add_argument("--seed-index", type=int, default=0, help="--standalone-only: 0 or 1 (the second run); "
                        "2: the final-budget trainings")
    a = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / "supernet.json"
    saved: dict[str, Any] = json.loads(json_path.read_text()) if json_path.exists() else {}
    by_data = {d: saved.get("by_data", {}).get(d) for d in ("quickstart", "cifar10")}
    if not a.report_only:
        ws = ROOT / "runs" / f"bench-supernet{'-' + a.data if a.data != 'quickstart' else ''}"
        ws.mkdir(parents=True, exist_ok=True)
        if a.standalone_only:
            path = configs(a.data, ws)["supernet"]
            torch.set_num_threads(1)  # two of these run side by side on two cores
            specs = rank_subnets(path, a.subnets)
            if a.seed_index == 2:
                final_trained(path, ws, specs[:a.finals])
            else:
                standalone(path, ws, specs, a.seed_index)
            return
        by_data[a.data] = figures(a.data, ws, stages(a.data, ws, a))
    done = {d: r for d, r in by_data.items() if r}
    flat: dict[str, Any] = {"by_data": done}
    for data, r in done.items():
        prefix = "" if data == "quickstart" else f"{data}_"
        flat.update({prefix + k: r[k] for k in ("kendall_tau", "candidates_per_hour_ratio", "hv_ratio_macs",
                                                "hv_ratio_latency")})
    json_path.write_text(json.dumps(flat, indent=2, default=float) + "\n")
    (RESULTS / "supernet.md").write_text(markdown(done))
    print((RESULTS / "supernet.md").read_text())


if __name__ == "__main__":
    main()
    record_run("supernet")  # the date benchmarks/results_page.py shows
