"""Run folders for the commands that use one: config, storage URL, studies, and the end-of-run
outputs; the progress loop that prints a line per trial."""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd

from nas.core.config import SearchConfig, load_search_config
from nas.core.errors import UserError
from nas.hardware.profiles import load_profile
from nas.search.artifacts import open_store
from nas.search.budget_scan import explain_empty_front
from nas.search.on_supernet import supernet_path
from nas.search.progress import Progress
from nas.search.record import result_of
from nas.search.report import write_outputs
from nas.search.run_folder import check_run_dir, run_storage
from nas.search.storage import redact
from nas.search.study import baselines_study_name, find_study, load_run_config
from nas.search.verify_front import check_verify_profile, summary, verify_front
from nas.space.kinds import check_space

EXIT_INTERRUPTED = 130


def load_run(run_dir: Path, storage: str | None) -> tuple[SearchConfig, optuna.Study | None, optuna.Study | None]:
    """A run folder's config, search study and baselines study (either may not exist yet)."""
    cfg = load_run_config(run_dir)
    url = run_storage(run_dir, storage)
    search, baselines = find_study(cfg, url, cfg.name), find_study(cfg, url, baselines_study_name(cfg))
    if search is None and baselines is None:
        raise UserError(f"{run_dir} holds no study yet; run hwnas search or hwnas baselines first")
    return cfg, search, baselines


def prepare_run(args: argparse.Namespace) -> tuple[SearchConfig, Path, str]:
    """Config (with --trials applied), run folder and storage URL of a search or baselines
    command, all checked; nothing is written here."""
    cfg = load_search_config(args.config)
    check_space(cfg.space)
    if getattr(args, "trials", None) is not None:
        if args.trials < 1:
            raise UserError(f"--trials {args.trials} not allowed; allowed: integers >= 1")
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, trials=args.trials))
    if getattr(args, "profile", None):
        cfg = for_profile(cfg, args.profile)
    run_dir = Path(args.out) if args.out else Path("runs") / cfg.name
    check_run_dir(run_dir)
    return cfg, run_dir, run_storage(run_dir, args.storage)


def for_profile(cfg: SearchConfig, profile: str) -> SearchConfig:
    """The config searched for another profile (``--profile``): its own name, hence its own study
    and run folder (runs/<name>-<profile>), on the same supernet when it searches on one."""
    load_profile(profile)  # an unknown name is a one-line error listing the bundled ones
    search = dataclasses.replace(cfg.search, profile=profile, supernet=str(supernet_path(cfg))
                                 if cfg.search.strategy == "supernet" else cfg.search.supernet)
    return dataclasses.replace(cfg, name=f"{cfg.name}-{profile}", search=search)


def front_text(front: pd.DataFrame) -> str:
    shown = front[["source", "trial", "name", "accuracy", "latency_ms", "macs", "params", "peak_memory_mb",
                   "arch"]].copy()
    shown["accuracy"] = (shown["accuracy"] * 100).round(2)
    extrapolated = front["latency_caveat"].notna() if "latency_caveat" in front else front["trial"] < 0
    if not extrapolated.any():
        return shown.to_string(index=False)
    shown["latency_ms"] = [f"{v:.4g}{'*' if e else ''}" for v, e in zip(shown["latency_ms"], extrapolated)]
    return (shown.to_string(index=False) + "\n* latency EXTRAPOLATED: predicted outside the profile's calibration "
            "(front.csv's latency_caveat says how); check it on the device")


def finish_run(cfg: SearchConfig, run_dir: Path, storage: str) -> None:
    """Write the run's outputs and print where they are, and the front."""
    _, search, baselines = load_run(run_dir, storage)
    front = write_outputs(run_dir, budgets=dataclasses.asdict(cfg.search.budgets), search=search, baselines=baselines,
                          store=open_store(run_dir, cfg.search.artifact_store))
    n_search = int((front["source"] == "search").sum())
    print(f"front: {run_dir / 'front.csv'} ({n_search} Pareto-optimal feasible trials"
          f"{', %d baselines' % (len(front) - n_search) if baselines else ''}); plot: {run_dir / 'front.png'}; "
          f"models: {run_dir / 'models'}; all trials: {run_dir / 'trials.csv'}")
    if len(front):
        print(front_text(front))
    verify_on = check_verify_profile(cfg.search.verify_front)
    if verify_on is not None and search is not None:
        print(f"measuring the front's {n_search} files on {verify_on.tag} (search.verify_front) ...", flush=True)
        records = {t.number: r for t in search.trials if (r := result_of(t)) is not None}
        print(summary(verify_front(run_dir, front, verify_on, records), verify_on))
    if n_search == 0 and (run_dir / "trials.csv").is_file():
        trials = pd.read_csv(run_dir / "trials.csv")
        searched = trials[trials["baseline"].isna()] if "baseline" in trials else trials
        why = explain_empty_front(searched, dataclasses.asdict(cfg.search.budgets))
        if why:
            print(why)


def with_progress(progress: Progress, storage: str, what: str, run: Callable[..., object]) -> bool:
    """Run a search or baselines loop printing a line per trial; False when interrupted (Ctrl-C)."""
    try:
        run(callbacks=(lambda s, t: print(progress.line(s, t), flush=True),),
            on_start=lambda n, arch: print(progress.start_line(n, arch), flush=True))
    except KeyboardInterrupt:
        print(f"interrupted; finished {what} are kept in {redact(storage)}. Run the same command to resume "
              "(the interrupted candidate runs first).")
        return False
    return True
