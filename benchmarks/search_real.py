"""One real search run of the search-efficiency benchmark: hwnas's own ``run_search`` on one
worker (one training thread) for a fixed wall-clock budget, every candidate's validation accuracy
also measured after each epoch (its learning curve, which the tabulated benchmark replays early
stopping against). Each curve is appended to ``curves.jsonl`` as its trial ends; the run's study,
trials.csv and front are the product's own, in the run folder.

    .venv/bin/python benchmarks/search_real.py --data fmnist --sampler random --seed 0 --minutes 10 \\
        --out runs/bench-efficiency/real/fmnist-random-0

Called by benchmarks/search_efficiency.py; a run folder with ``done.json`` is finished.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from nas.core.config import SearchConfig, load_search_config, parse_search_config
from nas.data.splits import Preprocess, Splits
from nas.search.study import config_to_dict, load_splits, run_search
from nas.space.builder import Net
from nas.train.final import accuracy
from nas.train.trainer import EpochHook, train

ROOT = Path(__file__).resolve().parent.parent
CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
EPOCHS = 3


def cifar10_space() -> dict[str, Any]:
    """The CIFAR-10 space: 32-pixel RGB images, the compact blocks of images-pi4.yaml, fp32 on this CPU."""
    return {"resolutions": [24, 32], "widths": [0.5, 0.75, 1.0], "stem_chs": 16, "stem_stride": 1,
            "head_chs": 256, "block_types": ["ir", "ds"], "kernels": [3, 5], "exp_ratios": [3, 4, 6],
            "stages": [{"chs": 16, "stride": 1, "depths": [1]}, {"chs": 24, "stride": 2, "depths": [1, 2]},
                       {"chs": 48, "stride": 2, "depths": [1, 2, 3]}, {"chs": 96, "stride": 2, "depths": [1, 2]}]}


def benchmark_config(data: str, sampler: str, seed: int, *, early_stopping: dict[str, Any] | None = None,
                     name: str | None = None, population: int = 8) -> SearchConfig:
    """The quickstart search (Fashion-MNIST) or its CIFAR-10 counterpart, one training thread,
    ``sampler`` and ``seed``; trials unbounded (the wall-clock budget stops the run). ``population``:
    NSGA-II's, and the random start of TPE and GP (8, as the quickstart had when measured)."""
    raw = config_to_dict(load_search_config("quickstart"))
    raw["name"] = name or f"eff-{data}-{sampler}-{seed}"
    raw["seed"] = seed
    raw["train"] |= {"threads": 1, "epochs": EPOCHS}
    raw["search"] |= {"sampler": sampler, "trials": 10_000, "early_stopping": early_stopping, "population": population}
    if data == "cifar10":
        raw["data"] = {"dataset": "cifar10", "dir": str(CIFAR10), "download": False, "val_fraction": 0.1}
        raw["space"] = cifar10_space()
        raw["train"] |= {"train_subset": 10_000}
        raw["search"]["budgets"] = {"latency_ms": None, "peak_memory_mb": 2.0, "macs": 8_000_000}
    return parse_search_config(raw)


@dataclass
class CurveTrainer:
    """hwnas's trainer, with the validation accuracy of every epoch measured and appended to
    ``path`` (one JSON line per candidate: its seed, arch, accuracies and seconds)."""

    path: Path
    splits: Splits
    curves: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, model: Net, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess,
                 resolution: int, cfg: Any, seed: int, teacher_logits: np.ndarray | None = None,
                 on_epoch: EpochHook | None = None) -> list[float]:
        curve: dict[str, Any] = {"seed": seed, "arch": model.spec.format(), "acc": [], "eval_s": [], "epoch_end_s": []}
        started = time.perf_counter()

        def hook(epoch: int, trained: Any) -> None:
            begun = time.perf_counter()
            device = next(trained.parameters()).device
            curve["acc"].append(accuracy(trained, self.splits.x_val, self.splits.y_val, preprocess=preprocess,
                                         resolution=resolution, device=device))
            curve["eval_s"].append(time.perf_counter() - begun)
            curve["epoch_end_s"].append(begun - started)
            if on_epoch is not None:
                on_epoch(epoch, trained)

        losses = train(model, images, labels, preprocess=preprocess, resolution=resolution, cfg=cfg, seed=seed,
                       teacher_logits=teacher_logits, on_epoch=hook)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(curve) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return losses


@dataclass
class Deadline:
    """Stops the study once ``seconds`` of wall clock have passed since ``started`` (the running
    trial finishes; the benchmark cuts every curve at the budget)."""

    started: float
    seconds: float

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if time.time() - self.started >= self.seconds:
            study.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("fmnist", "cifar10"), required=True)
    parser.add_argument("--sampler", default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cfg = benchmark_config(args.data, args.sampler, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(cfg, cache_dir=ROOT / "runs" / ".cache")
    started = time.time()
    trainer = CurveTrainer(args.out / "curves.jsonl", splits)
    run_search(cfg, args.out / "run", splits=splits, trainer=trainer, callbacks=[Deadline(started, 60 * args.minutes)])
    (args.out / "done.json").write_text(json.dumps({"started": started, "ended": time.time(),
                                                    "budget_s": 60 * args.minutes, "data": args.data,
                                                    "sampler": args.sampler, "seed": args.seed}))


if __name__ == "__main__":
    main()
