"""Search-efficiency benchmark: does a strategy beat sampling at random at equal wall clock?

    .venv/bin/python benchmarks/search_efficiency.py            # every stage; resumable
    .venv/bin/python benchmarks/search_efficiency.py --stage real  # only the real runs
    .venv/bin/python benchmarks/search_efficiency.py --stage pair --data fmnist --pair random tpe --seeds 5 6
        # real runs of one strategy pair on seeds of your own, beside the replayed quartiles

Stages (each cached under runs/bench-efficiency/, so a killed run continues where it stopped):

1. ``real``: real searches (benchmarks/search_real.py) on one worker with one training thread,
   10 minutes each: random and TPE, seeds 0 and 1, on Fashion-MNIST (the quickstart space) and
   CIFAR-10 (32 pixels; and random seed 2), two at a time (one core each). Every candidate's
   learning curve is kept. A run that was interrupted is started again from scratch (its
   wall-clock curve would be wrong otherwise).
2. ``replay``: a tabulated benchmark fitted to those runs (benchmarks/search_table.py) replays
   every strategy over more seeds (benchmarks/search_replay.py), validated against the real runs.
3. ``report``: hypervolume over time, quartiles, time to random's median final hypervolume, rank
   tests; benchmarks/results/search_efficiency.md, .json, .png.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from nas.core.config import SearchConfig
from nas.core.files import write_atomic
from nas.cost.costs import ModelCosts, count_costs
from nas.space.arch import ArchSpec

from nas.search.study import load_splits
from nas.supernet.store import check_matches, load_supernet

from results_page import record_run
from search_real import benchmark_config
from search_replay import Replay
from search_report import dataset_figures, final_hv, plot, real_figures
from search_report_md import markdown, setup_text
from search_supernet import STRATEGIES as SUPERNET_STRATEGIES
from search_supernet import InheritedScores, SupernetReplay
from search_stats import Point, hypervolume, quartiles, rank_test
from search_table import Surrogate, held_out_error, load_run, parse_all, rung_agreement

ROOT = Path(__file__).resolve().parent.parent
WS = ROOT / "runs" / "bench-efficiency"
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = ("fmnist", "cifar10")
# CIFAR-10 candidates train about 2.5x slower: one more random run gives its table more architectures
REAL_RUNS = {"fmnist": (("random", 0), ("tpe", 0), ("random", 1), ("tpe", 1)),
             "cifar10": (("random", 0), ("tpe", 0), ("random", 1), ("tpe", 1), ("random", 2))}
REAL_MINUTES = 10.0
REPLAY_BUDGET_S = 600.0  # the same 10 minutes of one worker as the real runs
SEEDS = tuple(range(10))
BASE_STRATEGIES = ("random", "nsga2", "tpe", "gp")
# TPE with half the random start (4 trials of about 30 a run, not 8)
VARIANTS = ("tpe/p4",)
# the real runs' pair replayed under the real runs' conditions (each epoch's accuracy also measured), to check the table
VALIDATION = ("random@real", "tpe@real")
# early stopping after epoch 1 or epoch 2 of 3 unless in the best third of the trials at that rung
ES = {"es1": {"rungs": [1], "eta": 3, "min_trials": 4}, "es2": {"rungs": [2], "eta": 3, "min_trials": 4}}
# hypervolume reference points: chance accuracy, a host latency above every candidate, the MACs budget (M)
REFERENCE: dict[str, Point] = {"fmnist": (0.1, 0.5, 2.5), "cifar10": (0.1, 1.0, 8.0)}


def real_dir(data: str, sampler: str, seed: int) -> Path:
    return WS / "real" / f"{data}-{sampler}-{seed}"


def run_real(jobs: queue.SimpleQueue[tuple[str, str, int]]) -> None:
    """Real runs taken from ``jobs`` one after another; finished ones are kept."""
    while True:
        try:
            data, sampler, seed = jobs.get_nowait()
        except queue.Empty:
            return
        out = real_dir(data, sampler, seed)
        if (out / "done.json").exists():
            continue
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        with open(out / "log.txt", "wb") as log:
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search_real.py"), "--data", data, "--sampler",
                            sampler, "--seed", str(seed), "--minutes", str(REAL_MINUTES), "--out", str(out)],
                           stdout=log, stderr=subprocess.STDOUT, check=True, cwd=ROOT)
        print(f"real run {out.name} done", flush=True)


def stage_real(runs: list[tuple[str, str, int]] | None = None) -> None:
    """Every real run (or ``runs``), two at a time (one per core)."""
    jobs: queue.SimpleQueue[tuple[str, str, int]] = queue.SimpleQueue()
    for job in runs or [(d, sampler, seed) for d in DATASETS for sampler, seed in REAL_RUNS[d]]:
        jobs.put(job)
    threads = [threading.Thread(target=run_real, args=(jobs,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def table_file(data: str) -> Path:
    """The committed table of ``data``: every trial of the real runs, so a fresh clone replays
    (and re-checks) without the 55 minutes of real runs."""
    return RESULTS / f"search_efficiency_table_{data}.csv"


def load_table(data: str) -> pd.DataFrame:
    """Every finished trial of the dataset's real runs: from the run folders when all of them are
    here (and then written to the committed table), else from the committed table."""
    runs = [(real_dir(data, sampler, seed), f"{sampler}-{seed}") for sampler, seed in REAL_RUNS[data]]
    if all((folder / "done.json").exists() for folder, _ in runs):
        table = pd.concat([load_run(folder, name) for folder, name in runs], ignore_index=True)
        write_atomic(table_file(data), table.to_csv(index=False).encode())
        return table
    if table_file(data).exists():
        table = pd.read_csv(table_file(data))
        return table.astype({"rejected": bool, "feasible": bool})
    raise SystemExit(f"no table of {data}: run --stage real first")


class Pricer:
    """hwnas's exact costs of an architecture, cached (the replays meet the same ones often)."""

    def __init__(self) -> None:
        self.cache: dict[str, ModelCosts] = {}

    def __call__(self, spec: ArchSpec) -> ModelCosts:
        key = spec.format()
        if key not in self.cache:
            self.cache[key] = count_costs(spec)
        return self.cache[key]


def strategy_config(data: str, strategy: str, seed: int) -> SearchConfig:
    """``SAMPLER[/pN][+esK]``: a sampler, its population (random start) N, early stopping K."""
    name, _, stopping = strategy.partition("+")
    sampler, _, population = name.partition("/p")
    return benchmark_config(data, sampler, seed, early_stopping=ES[stopping] if stopping else None,
                            population=int(population or 8))


def replay_one(data: str, strategy: str, seed: int, surrogate: Surrogate, pricer: Pricer) -> dict[str, Any]:
    out = WS / "replay" / data / f"{strategy}-{seed}.json"
    if out.exists():
        return dict(json.loads(out.read_text()))
    name, _, conditions = strategy.partition("@")
    cfg = strategy_config(data, name, seed)
    in_chs, classes = (3, 10) if data == "cifar10" else (1, 10)
    replay = Replay(cfg, surrogate, REPLAY_BUDGET_S, pricer, in_chs, classes, curves=conditions == "real")
    events = replay.run()
    result = {"strategy": strategy, "seed": seed, "counts": replay.counts, "sampler_s": replay.sampler_s,
              "events": [e.__dict__ for e in events]}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(result).encode())
    return result


def stage_replay(data: str) -> None:
    """Fit the surrogate of ``data`` and replay every strategy over SEEDS seeds (cached per replay)."""
    torch.set_num_threads(1)
    table = load_table(data)
    pricer = Pricer()
    specs = parse_all(list(table["arch"]), pricer)
    surrogate = Surrogate(table, specs)
    (WS / "replay" / data).mkdir(parents=True, exist_ok=True)
    check = held_out_error(table, specs) | rung_agreement(surrogate, specs)
    write_atomic(WS / "replay" / data / "surrogate.json", json.dumps(check).encode())
    print(f"{data}: surrogate on {len(surrogate.rows)} trained architectures; held out: {check}", flush=True)
    for strategy in BASE_STRATEGIES:
        for seed in SEEDS:
            replay_one(data, strategy, seed, surrogate, pricer)
        print(f"{data}: {strategy} replayed over {len(SEEDS)} seeds", flush=True)
    for strategy in [*with_early_stopping(data), *VARIANTS, *VALIDATION]:
        for seed in SEEDS:
            replay_one(data, strategy, seed, surrogate, pricer)
        print(f"{data}: {strategy} replayed over {len(SEEDS)} seeds", flush=True)


def stage_supernet() -> None:
    """Replay the supernet strategies (benchmarks/search_supernet.py) on Fashion-MNIST over SEEDS,
    from the supernet benchmarks/supernet.py trained (runs/bench-supernet/supernet/)."""
    torch.set_num_threads(1)
    folder = ROOT / "runs" / "bench-supernet" / "supernet"
    supernet = load_supernet(folder / "supernet.pt")
    train_s = float(json.loads((folder / "training.json").read_text())["train_seconds"])
    base = strategy_config("fmnist", "tpe", 0)
    splits = load_splits(base, cache_dir=ROOT / "runs" / ".cache")
    check_matches(supernet, supernet.net.space.cfg, splits)
    table = load_table("fmnist")
    pricer = Pricer()
    surrogate = Surrogate(table, parse_all(list(table["arch"]), pricer))
    scores = InheritedScores(supernet, splits, base.supernet.bn_images, base.seed, WS / "replay" / "fmnist" /
                             "supernet-scores.json")
    for strategy, profiles in SUPERNET_STRATEGIES.items():
        for seed in SEEDS:
            out = WS / "replay" / "fmnist" / f"{strategy}-{seed}.json"
            if out.exists():
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            cfg = dataclasses.replace(strategy_config("fmnist", "tpe", seed), space=supernet.net.space.cfg)
            replay = SupernetReplay(cfg, surrogate, REPLAY_BUDGET_S, pricer, 1, 10, scores=scores,
                                    start_s=train_s / profiles)
            events = replay.run()
            scores.save()
            write_atomic(out, json.dumps({"strategy": strategy, "seed": seed, "counts": replay.counts,
                                          "sampler_s": replay.sampler_s, "start_s": train_s / profiles,
                                          "events": [e.__dict__ for e in events]}).encode())
            print(f"fmnist: {strategy} seed {seed} ({SEEDS.index(seed) + 1}/{len(SEEDS)}): {len(events)} candidates "
                  f"scored, {len(scores.done)} subnetworks scored so far", flush=True)
        print(f"fmnist: {strategy} replayed over {len(SEEDS)} seeds", flush=True)


def with_early_stopping(data: str) -> list[str]:
    """Early stopping at epoch 1 and at epoch 2 on the best model-based sampler of ``data``."""
    best = best_model_based(data)
    return [f"{best}+es1", f"{best}+es2"]


def best_model_based(data: str) -> str:
    """The sampler (not random) with the highest median final hypervolume on ``data``."""
    ref = REFERENCE[data]
    medians = {}
    for strategy in ("nsga2", "tpe", "gp"):
        finals = [final_hv(replay_one_cached(data, strategy, seed), ref) for seed in SEEDS]
        medians[strategy] = float(np.median(finals))
    return max(medians, key=lambda k: medians[k])


def replay_one_cached(data: str, strategy: str, seed: int) -> dict[str, Any]:
    return dict(json.loads((WS / "replay" / data / f"{strategy}-{seed}.json").read_text()))


def validation(data: str, real: dict[str, Any], fig: dict[str, Any]) -> dict[str, Any]:
    """The real runs beside the replays of the same strategies: does the table replay what runs see?"""
    out = {}
    for sampler in ("random", "tpe"):
        low, high = min_max(data, f"{sampler}@real")
        mine = [real[f"{sampler}-{seed}"]["hv"] for s, seed in REAL_RUNS[data] if s == sampler and f"{s}-{seed}" in real]
        replayed = fig["strategies"][f"{sampler}@real"]
        out[sampler] = {"real_final_hv": mine, "replay_hv_q1": replayed["hv_q1"], "replay_hv_median": replayed["hv_median"],
                        "replay_hv_q3": replayed["hv_q3"],
                        "real_within_replay_range": [bool(low <= v <= high) for v in mine]}
    real_ratio = np.median(out["tpe"]["real_final_hv"]) / np.median(out["random"]["real_final_hv"])
    out["tpe_over_random"] = {"real": float(real_ratio), "replay": fig["strategies"]["tpe@real"]["hv_median"]
                              / fig["strategies"]["random@real"]["hv_median"]}
    return out


def replays_of(data: str, strategy: str) -> list[dict[str, Any]]:
    return [replay_one_cached(data, strategy, seed) for seed in SEEDS]


def min_max(data: str, strategy: str) -> tuple[float, float]:
    finals = [final_hv(replay_one_cached(data, strategy, seed), REFERENCE[data]) for seed in SEEDS]
    return min(finals), max(finals)


def write_report(datasets: list[str]) -> None:
    figures, report, validations, surrogates, reals = {}, {}, {}, {}, {}
    for data in datasets:
        strategies = [*BASE_STRATEGIES, *with_early_stopping(data), *VARIANTS, *VALIDATION,
                      *(s for s in SUPERNET_STRATEGIES if (WS / "replay" / data / f"{s}-{SEEDS[-1]}.json").exists())]
        fig = dataset_figures(functools.partial(replays_of, data), strategies, REFERENCE[data])
        figures[data] = fig
        reals[data] = real_figures(load_table(data), REFERENCE[data])
        validations[data] = validation(data, reals[data], fig)
        surrogates[data] = json.loads((WS / "replay" / data / "surrogate.json").read_text())
        report[data] = {name: {k: v for k, v in f.items() if not k.startswith("_")}
                        for name, f in fig["strategies"].items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(figures, RESULTS / "search_efficiency.png")
    best = {d: max((s for s in report[d] if s != "random" and "@" not in s),
                   key=lambda s: (report[d][s]["speedup_vs_random"] or 0.0, report[d][s]["hv_median"])) for d in report}
    target = {d: {"best": best[d], "speedup_vs_random": report[d][best[d]]["speedup_vs_random"],
                  "p_vs_random": report[d][best[d]]["p_vs_random"],
                  "met": bool((report[d][best[d]]["speedup_vs_random"] or 0) >= 2 and report[d][best[d]]["p_vs_random"] < 0.05)}
              for d in report}
    payload = {**report, "target": target, "validation": validations, "surrogate_held_out": surrogates,
               "real_runs": reals, "setup": setup_text(),
               "reference_points": {d: figures[d]["reference_point"] for d in figures},
               "union_hv": {d: figures[d]["union_hv"] for d in figures}}
    write_atomic(RESULTS / "search_efficiency.json", json.dumps(payload, indent=1, default=float).encode())
    write_atomic(RESULTS / "search_efficiency.md", markdown(payload).encode())
    record_run("search_efficiency")
    print(markdown(payload))


def stage_pair(data: str, pair: list[str], seeds: list[int]) -> None:
    """Real runs of two samplers on seeds of your own, their final hypervolumes beside the
    replayed quartiles (re-checking one strategy pair without the table)."""
    stage_real([(data, sampler, seed) for seed in seeds for sampler in pair])
    stage_replay(data)  # the replays of the committed table, where not cached
    ref, rows = REFERENCE[data], []
    for sampler in pair:
        hvs = [real_figures(load_run(real_dir(data, sampler, seed), f"{sampler}-{seed}"), ref)[f"{sampler}-{seed}"]["hv"]
               for seed in seeds]
        replayed = [final_hv(replay_one_cached(data, sampler, seed), ref) for seed in SEEDS]
        rows.append({"sampler": sampler, "seeds": seeds, "real_final_hv": hvs, "replay_quartiles": quartiles(replayed)})
    p = rank_test(rows[1]["real_final_hv"], rows[0]["real_final_hv"])
    result = {"data": data, "pair": pair, "runs": rows, f"p_{pair[1]}_over_{pair[0]}": p}
    write_atomic(RESULTS / f"search_efficiency_pair_{data}_{'_'.join(pair)}.json", json.dumps(result, indent=1).encode())
    print(json.dumps(result, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=("real", "replay", "supernet", "report", "all", "pair"), default="all")
    parser.add_argument("--pair", nargs=2, default=["random", "tpe"], help="--stage pair: the two samplers")
    parser.add_argument("--seeds", nargs="+", type=int, default=[5, 6], help="--stage pair: seeds of your own")
    parser.add_argument("--data", nargs="+", choices=DATASETS, default=list(DATASETS))
    args = parser.parse_args()
    if args.stage == "pair":
        stage_pair(args.data[0], args.pair, args.seeds)
    if args.stage in ("real", "all"):
        stage_real()
    if args.stage in ("replay", "all"):
        threads = [threading.Thread(target=stage_replay, args=(data,)) for data in args.data]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if args.stage in ("supernet", "all") and (ROOT / "runs" / "bench-supernet" / "supernet" / "supernet.pt").exists():
        stage_supernet()
    if args.stage in ("report", "all"):
        write_report(args.data)


if __name__ == "__main__":
    main()
