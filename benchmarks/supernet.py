"""Supernet benchmark: does a supernet rank its subnetworks, judged against training noise, and
what does a front cost with it and without it (issue 29).

    .venv/bin/python benchmarks/supernet.py                  # Fashion-MNIST (searches/supernet.yaml)
    .venv/bin/python benchmarks/supernet.py --data cifar10   # CIFAR-10 from ../shared/data
    .venv/bin/python benchmarks/supernet.py --rank-only      # supernet and rank only, no searches
    .venv/bin/python benchmarks/supernet.py --report-only    # rewrite the report from finished stages

Stages (each cached in runs/bench-supernet[-cifar10]/, so a killed run resumes where it stopped;
``--standalone-only --seed-index 0|1|2`` runs the supernet-independent trainings in parallel
processes: stand-alone seed 0, seed 1, and the final budget):
1. ``hwnas supernet train`` (its own clock, resumed sessions included) on the derived space;
2. rank (benchmarks/supernet_rank.py): random budget-feasible subnetworks, inherited accuracy
   against two stand-alone runs (their agreement is the noise ceiling) and the final budget;
3. ``hwnas search`` on the supernet (host CPU), timed: seconds per candidate;
4. ``hwnas search --profile P`` from the same supernet for each device (the amortisation);
5. finals: the front's best retrained from scratch and fine-tuned from inherited weights.
Writes benchmarks/results/supernet.md, supernet.json (keys per dataset) and front plots.
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
import pandas as pd
import torch
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nas.core.config import load_search_config  # noqa: E402
from nas.search.study import config_to_dict  # noqa: E402
from results_page import record_run  # noqa: E402  (benchmarks/ is on the path when run as a script)
from supernet_rank import (final_trained, inherited, median_seconds, rank_figures, rank_subnets,  # noqa: E402
                           standalone)
from supernet_report import figures, markdown  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
HWNAS = [sys.executable, "-m", "nas.cli"]
DATASETS = ("fmnist", "cifar10")
DEVICES = {"jetson-nano": None, "raspberry-pi4": None, "edgetpu": {"quantize": ["static"]}}


def _write_config(cfg: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def configs(data: str, ws: Path) -> dict[str, Path]:
    """The supernet config (searches/supernet.yaml, or its CIFAR-10 version) and its variants."""
    base = config_to_dict(load_search_config("supernet"))
    base["name"] = f"bench-supernet{'-' + data if data != 'fmnist' else ''}"
    if data == "cifar10":
        base["data"] = {"dataset": "cifar10", "dir": str(ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"),
                        "download": False, "val_fraction": 0.1}
        base["space"]["resolutions"] = [24, 28, 32]
        base["search"]["budgets"] = {"latency_ms": None, "peak_memory_mb": 2.0, "macs": 12_000_000}
        # 6 epochs, not 15: the 15-epoch CIFAR-10 supernet ran at 5 s a step beside the other stages
        # (a 3-hour ETA), more than one session had left on 2 cores
        base["supernet"]["epochs"] = 6
    base["search"]["supernet"] = str(ws / "supernet" / "supernet.pt")
    out = {"supernet": _write_config(base, ws / "supernet.yaml")}
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
    seconds = (median_seconds(ws, "standalone_0"), median_seconds(ws, "final"))
    return rank_figures(rows, alone, final, seconds)


def trials(run_dir: Path) -> pd.DataFrame:
    table = pd.read_csv(run_dir / "trials.csv")
    return table[table["state"] == "COMPLETE"]


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
    # recomputed every time (seconds: inherited scores only; stand-alone and final runs are cached per arch)
    out["rank"] = rank_agreement(paths["supernet"], ws, a.subnets, a.finals)
    if a.rank_only:
        return out
    if (done := stage_done(ws, "search")) is None:
        wall = run(["search", str(paths["supernet"]), "--out", str(ws / "search-supernet"), "--trials",
                    str(a.trials)], ws / "search.log")
        done = mark_done(ws, "search", {"wall_seconds": wall, "complete": len(trials(ws / "search-supernet"))})
    out["search"] = done
    for profile, compression in DEVICES.items():
        if stage_done(ws, f"device_{profile}") is None and a.device_trials > 0:
            config = paths["int8" if compression else "supernet"]
            wall = run(["search", str(config), "--profile", profile, "--out", str(ws / f"front-{profile}"),
                        "--trials", str(a.device_trials)], ws / f"device-{profile}.log")
            mark_done(ws, f"device_{profile}", {"wall_seconds": wall})
        if stage_done(ws, f"device_{profile}") is not None:  # --device-trials 0: the fronts already searched
            out[f"device_{profile}"] = stage_done(ws, f"device_{profile}")
    if not a.no_retrain:
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


def device_fronts(data: str, ws: Path, out: dict[str, Any]) -> dict[str, int]:
    """Plot each searched front; the number of Pareto-optimal trials of each."""
    fronts = {}
    if "search" in out:
        fronts["cpu"] = plot_front(ws / "search-supernet", "cpu", RESULTS / f"supernet{_sfx(data)}_front_cpu.png")
    for profile in (p for p in DEVICES if f"device_{p}" in out):
        fronts[profile] = plot_front(ws / f"front-{profile}", profile, RESULTS / f"supernet{_sfx(data)}_front_{profile}.png")
    return fronts


def _sfx(data: str) -> str:
    return "" if data == "fmnist" else f"_{data}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=DATASETS, default="fmnist")
    parser.add_argument("--subnets", type=int, default=30)
    parser.add_argument("--trials", type=int, default=150, help="trials of the supernet search")
    parser.add_argument("--device-trials", type=int, default=60)
    parser.add_argument("--final-epochs", type=int, default=5, help="epochs of the scratch vs fine-tune finals")
    parser.add_argument("--final-models", type=int, default=3, help="front trials in the scratch vs fine-tune finals")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-retrain", action="store_true", help="skip the scratch vs fine-tune finals stage")
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
    by_data = {d: saved.get(d) for d in DATASETS}
    if not a.report_only:
        ws = workspace(a.data)
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
        out = stages(a.data, ws, a)
        by_data[a.data] = {**figures(out), "front_sizes": device_fronts(a.data, ws, out)}
    done = {d: r for d, r in by_data.items() if r}
    json_path.write_text(json.dumps(done, indent=2, default=float) + "\n")
    (RESULTS / "supernet.md").write_text(markdown(done))
    print((RESULTS / "supernet.md").read_text())


def workspace(data: str) -> Path:
    return ROOT / "runs" / f"bench-supernet{_sfx(data).replace('_', '-')}"


if __name__ == "__main__":
    main()
    record_run("supernet")  # the date benchmarks/results_page.py shows
