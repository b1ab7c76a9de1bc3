"""``hwnas search``, ``baselines``, ``front``, ``export`` and ``dashboard``: commands on a run folder."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import os
from pathlib import Path

import optuna
import optuna_dashboard

from nas.cli._run import EXIT_INTERRUPTED, finish_run, front_text, load_run, prepare_run, with_progress
from nas.cli.workers import BUDGETS_CHECKED_ENV, run_workers
from nas.core.config import SearchConfig
from nas.core.errors import UserError
from nas.core.vocab import BUDGET_KEYS
from nas.data.splits import Splits
from nas.deploy.edgetpu import compiler_command
from nas.hardware.profiles import HardwareProfile, load_profile
from nas.search.artifacts import open_store, store_path
from nas.search.baselines import baseline_grid, baselines_study_name, finished_baselines, run_baselines
from nas.search.budget_scan import coverage_note, scan_budgets
from nas.search.dashboard_storage import UserStudies
from nas.search.deploy_steps import target_of
from nas.search.on_supernet import searched_space
from nas.search.progress import Progress
from nas.search.reexport import reexport
from nas.search.report import KEEP_MARK, export_trial_files, front_table
from nas.search.run_folder import STORAGE_ENV, default_storage, inside, run_storage
from nas.search.slots import counts
from nas.search.storage import redact, storage_from_url
from nas.search.study import create_run, find_study, load_run_config, load_splits, prepare_search, run_search

def cmd_search(args: argparse.Namespace) -> int:
    cfg, run_dir, storage = prepare_run(args)
    profile, splits = prepare_search(cfg, run_dir)  # everything checked before the run folder is written
    searched = cfg
    if cfg.search.strategy == "supernet":  # the space searched is the supernet's (nas.supernet.derive)
        searched = dataclasses.replace(cfg, space=searched_space(cfg, splits))
        if searched.space != cfg.space and not os.environ.get(BUDGETS_CHECKED_ENV):
            print(f"hwnas search {cfg.name}: searching the supernet's space (supernet.space: derive), the space "
                  "narrowed to the budgets as hwnas supernet train said", flush=True)
    if not os.environ.get(BUDGETS_CHECKED_ENV):
        check_budgets(searched, profile, splits)
    if args.workers is not None:
        most = 4 * (os.cpu_count() or 1)  # each worker holds the data and a model (about 300 MB here)
        if not 1 <= args.workers <= most:
            raise UserError(f"--workers {args.workers} not allowed; allowed: 1 to {most} (4 per CPU core of this "
                            "machine; more workers on other machines join through a shared --storage)")
        create_run(cfg, run_dir, storage)
        print(f"hwnas search {cfg.name}: {args.workers} workers on {redact(storage)}, {cfg.search.trials} trials, "
              f"run folder {run_dir}", flush=True)
        code = run_workers(args.workers, args.config, run_dir, cfg, storage, args.profile)
        if code == 0:
            finish_run(cfg, run_dir, storage)
        return code
    progress = Progress(total=cfg.search.trials)

    def ready(study: optuna.Study, worker: int) -> None:
        progress.already_done = counts(study)[0]
        # a worker index means something where workers share a storage, not on a lone run resumed
        who = f"worker {worker}, " if storage != default_storage(run_dir) or os.environ.get(STORAGE_ENV) else ""
        print(f"hwnas search {cfg.name}: {who}{cfg.search.trials} trials ({progress.already_done} already "
              f"finished), profile {cfg.search.profile}, objectives {', '.join(cfg.search.objectives)}, run folder "
              f"{run_dir}, storage {redact(storage)}", flush=True)

    run = functools.partial(run_search, cfg, run_dir, storage=storage, profile=profile, splits=splits, on_ready=ready)
    if not with_progress(progress, storage, "trials", run):
        return EXIT_INTERRUPTED
    finish_run(cfg, run_dir, storage)
    return 0


def check_budgets(cfg: SearchConfig, profile: HardwareProfile, splits: Splits) -> None:
    """Print where each budget falls in the space on the target; an impossible one stops the
    search before any training with the floor and its cause. A target calibrated on networks far
    from the space's says so first."""
    coverage = coverage_note(cfg, profile, splits)
    if coverage is not None:
        print(f"hwnas search {cfg.name}: {coverage}", flush=True)
    if not any(getattr(cfg.search.budgets, key) is not None for key in BUDGET_KEYS):
        return
    print(f"hwnas search {cfg.name}: pricing the space on {profile.tag} against the budgets ...", flush=True)
    scan = scan_budgets(cfg, profile, splits)
    impossible = scan.impossible(cfg.search.budgets)
    if impossible is not None:
        raise UserError(impossible)
    for line in scan.notes(cfg.search.budgets):
        print(line, flush=True)


def cmd_baselines(args: argparse.Namespace) -> int:
    cfg, run_dir, storage = prepare_run(args)
    _, splits = prepare_search(cfg, run_dir)
    create_run(cfg, run_dir, storage)
    grid = baseline_grid(cfg, in_chs=splits.preprocess.channels, classes=len(splits.classes))
    done = finished_baselines(find_study(cfg, storage, baselines_study_name(cfg)))
    progress = Progress(total=len(grid), already_done=sum(b.name in done for b in grid))
    print(f"hwnas baselines {cfg.name}: {len(grid)} handcrafted networks ({progress.already_done} already finished), "
          f"same data and training budget as the search, budgets {'ignored' if args.ignore_budgets else 'applied'}",
          flush=True)
    run = functools.partial(run_baselines, cfg, run_dir, storage=storage, profile=load_profile(cfg.search.profile),
                            splits=splits, ignore_budgets=args.ignore_budgets)
    if not with_progress(progress, storage, "baselines", run):
        return EXIT_INTERRUPTED
    finish_run(cfg, run_dir, storage)
    return 0


def cmd_front(args: argparse.Namespace) -> int:
    _, search, baselines = load_run(Path(args.run_dir), args.storage)
    front = front_table(search, baselines)
    print(front_text(front) if len(front) else "no feasible completed trials yet")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if args.precision is not None and args.format is None:
        raise UserError("--precision needs --format; allowed: --format onnx|tflite --precision fp32|int8")
    if args.final is not None:
        folder = inside(run_dir / "models", Path(f"{args.trial:04d}") / ("final" if args.final == "" else
                                                                          f"final-{args.final}"))
        if not (folder / "metrics.json").exists():
            raise UserError(f"{folder} holds no trained final; allowed: finals written by hwnas train "
                            f"(hwnas train {run_dir} --trial {args.trial})")
    else:
        cfg, search, _ = load_run(run_dir, args.storage)
        if search is None:
            raise UserError(f"{run_dir} holds no search study; allowed: runs made by hwnas search")
        try:
            path = export_trial_files(search, run_dir, args.trial, open_store(run_dir, cfg.search.artifact_store))
        except KeyError as exc:
            raise UserError(str(exc.args[0])) from None
        print(f"exported trial {args.trial}: {path} (with arch.txt, metrics.json and README.md)")
        folder = path.parent
        (folder / KEEP_MARK).touch()  # kept when the trial is not (or no longer) on the front
    if args.format is None:
        return 0
    run_cfg = load_run_config(run_dir)
    splits = load_splits(run_cfg, cache_dir=run_dir.parent / ".cache")
    m = reexport(folder, run_dir=run_dir, fmt=args.format, precision=args.precision or "fp32", splits=splits)
    print(f"wrote {run_dir / m.path}: {m.bytes} bytes, test accuracy {100 * m.test_accuracy:.2f}% measured on the "
          f"file by {m.runtime}; host latency {m.host_latency_ms:.4f} ms ({m.latency_how})")
    for key, value in m.extra:
        if key == "int8_route":
            print(f"int8 route {value}: {m.how}")
        if key == "edgetpu_summary" and target_of(run_cfg.search.profile) == "edgetpu":  # other targets: moot
            print(f"{value}\ncompile for the Edge TPU with: {compiler_command(run_dir / m.path)}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    cfg, _, _ = load_run(run_dir, args.storage)  # fail early on a folder that holds no study
    url = run_storage(run_dir, args.storage)
    store = open_store(run_dir, cfg.search.artifact_store)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ for {redact(url)}, trial files from "
          f"{store_path(run_dir, cfg.search.artifact_store)} (Ctrl-C to stop)", flush=True)
    optuna_dashboard.run_server(UserStudies(storage_from_url(url, heartbeat=False)), host=args.host, port=args.port,
                                artifact_store=store)
    return 0
