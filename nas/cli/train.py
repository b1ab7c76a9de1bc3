"""``hwnas train``: chosen trials of a run (or an arch string) trained to convergence, resumable."""
from __future__ import annotations

import argparse
import dataclasses
import re
import time
from pathlib import Path
from typing import Any

from nas.cli._run import EXIT_INTERRUPTED, load_run
from nas.core.config import FinalConfig
from nas.core.errors import UserError
from nas.core.vocab import SUPERNET_FINAL_INIT
from nas.hardware.profiles import load_profile
from nas.search.finals import (
    FinalJob,
    arch_job,
    final_metrics_path,
    finals_table,
    front_trials,
    inherited_start,
    train_final,
    trial_jobs,
)
from nas.search.report import write_csv, write_outputs
from nas.search.study import load_run_config, load_splits
from nas.train.final import EpochReport


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _final_config(base: FinalConfig, args: argparse.Namespace) -> FinalConfig:
    """The run's ``final`` section with the command line's overrides."""
    changes: dict[str, Any] = {}
    for name in ("epochs", "lr", "batch_size", "optimizer", "schedule", "threads", "device", "weight_decay",
                 "label_smoothing"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.train_subset is not None:
        if args.train_subset == "all":
            changes["train_subset"] = None
        elif args.train_subset.isdigit() and int(args.train_subset) >= 1:
            changes["train_subset"] = int(args.train_subset)
        else:
            raise UserError(f"--train-subset {args.train_subset!r} not allowed; allowed: all, integers >= 1")
    if args.augment is not None:
        names = tuple(a for a in args.augment.split(",") if a and a != "none")
        changes["augment"] = None if args.augment == "auto" else names
    return dataclasses.replace(base, **changes)  # __post_init__ checks the values


def _stage(args: argparse.Namespace) -> str:
    if args.stage is None:
        if args.init_from is not None:
            raise UserError("--init-from needs --stage NAME (a warm-started final goes to models/<trial>/final-NAME/, "
                            "beside the final it may start from)")
        return "final"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]{0,31}", args.stage):
        raise UserError(f"--stage {args.stage!r} not allowed; allowed: 1-32 of a-z, 0-9, _ (starting with a letter "
                        "or digit)")
    return f"final-{args.stage}"


def _jobs(args: argparse.Namespace, run_dir: Path, seed: int) -> list[FinalJob]:
    stage = _stage(args)
    return [dataclasses.replace(job, stage=stage) for job in _stage_jobs(args, run_dir, seed)]


def _stage_jobs(args: argparse.Namespace, run_dir: Path, seed: int) -> list[FinalJob]:
    if args.arch:
        return [arch_job(a, seed) for a in args.arch]
    _, search, _ = load_run(run_dir, args.storage)
    if search is None:
        raise UserError(f"{run_dir} holds no search study; use --arch, or run hwnas search first")
    numbers = front_trials(search) if args.front else list(dict.fromkeys(args.trial))
    if not numbers:
        raise UserError(f"{run_dir}: the search has no feasible Pareto-optimal trial yet; allowed: --trial N")
    return trial_jobs(search, numbers)


def _inherited(job: FinalJob, run_dir: Path, init: str | None, name: str) -> Path | None:
    start = inherited_start(job, run_dir, init or SUPERNET_FINAL_INIT)
    if start is not None:
        print(f"{name}: fine-tuned from its inherited supernet weights {start}", flush=True)
    return start


def cmd_train(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    cfg = load_run_config(run_dir)
    final = _final_config(cfg.final, args)
    jobs = _jobs(args, run_dir, cfg.seed)
    init_from = Path(args.init_from) if args.init_from else None
    if init_from is not None and len(jobs) != 1:
        raise UserError(f"--init-from takes one model's weights; {len(jobs)} models were chosen; allowed: one "
                        "--trial or --arch with it")
    if init_from is not None and args.init not in (None, "scratch"):
        raise UserError(f"--init {args.init} and --init-from both say where to start; allowed: one of them")
    profile = load_profile(cfg.search.profile)
    splits = load_splits(cfg, cache_dir=run_dir.parent / ".cache")
    aug = ", ".join(final.augmentations(splits.preprocess.channels)) or "none"
    subset = final.train_subset or len(splits.y_train)
    print(f"hwnas train {run_dir}: {len(jobs)} model(s), {final.epochs} epochs on {subset} training images "
          f"(augmentation: {aug}; {final.optimizer} lr {final.lr:g} {final.schedule}), validation on "
          f"{len(splits.y_val)} held-out images; checkpoint every epoch", flush=True)
    started = time.perf_counter()
    for i, job in enumerate(jobs, 1):
        name = f"trial {job.trial}" if job.trial is not None else job.key
        name += f" ({job.stage})" if job.stage != "final" else ""
        if final_metrics_path(run_dir, job).exists() and not args.restart:
            print(f"[{i}/{len(jobs)}] {name}: already trained ({run_dir / job.rel_dir}); --restart to train again")
            continue
        print(f"[{i}/{len(jobs)}] {name}: {job.spec.format()}", flush=True)
        best = [0.0]

        def report(r: EpochReport, name: str = name, i: int = i, best: list[float] = best) -> None:
            best[0] = max(best[0], r.val_accuracy)
            resumed = f" (resumed at epoch {r.resumed_from + 1})" if r.epoch == r.resumed_from + 1 and r.resumed_from else ""
            print(f"[{i}/{len(jobs)}] {name} epoch {r.epoch}/{r.epochs}{resumed}  loss {r.loss:.4f}  val "
                  f"{100 * r.val_accuracy:.2f}% (best {100 * best[0]:.2f}%)  {r.seconds:.0f}s/epoch  ETA this model "
                  f"{_clock(r.eta_s)} | elapsed {_clock(time.perf_counter() - started)}", flush=True)

        start = init_from or _inherited(job, run_dir, args.init, f"[{i}/{len(jobs)}] {name}")
        try:
            m = train_final(job, cfg=cfg, final=final, profile=profile, splits=splits, run_dir=run_dir,
                            on_epoch=report, restart=args.restart, init_from=start)
        except KeyboardInterrupt:
            print(f"interrupted; the last finished epoch is kept in {run_dir / job.rel_dir / 'checkpoint.pt'}. "
                  "Run the same command to resume.")
            return EXIT_INTERRUPTED
        proxy = m.get("proxy_test_accuracy")
        print(f"[{i}/{len(jobs)}] {name} done: test accuracy {100 * m['test_accuracy']:.2f}% measured on "
              f"{m.get('artifact') or m['onnx_path']} by {m.get('artifact_runtime') or 'onnxruntime'}" + (f" (proxy {100 * proxy:.2f}%)" if proxy is not None else ""),
              flush=True)
    table = finals_table(run_dir)
    write_csv(run_dir / "finals.csv", table)
    print(f"finals: {run_dir / 'finals.csv'}")
    if not args.arch:  # the plot is of the search: redraw it with the finals
        _, search, baselines = load_run(run_dir, args.storage)
        write_outputs(run_dir, budgets=dataclasses.asdict(cfg.search.budgets), search=search, baselines=baselines)
        print(f"plot with finals: {run_dir / 'front.png'}")
    if len(table):
        shown = table[["trial", "stage", "proxy_accuracy", "final_accuracy", "macs", "latency_ms", "final_dir"]].copy()
        for col in ("proxy_accuracy", "final_accuracy"):
            shown[col] = (shown[col] * 100).round(2)
        print(shown.to_string(index=False))
    return 0
