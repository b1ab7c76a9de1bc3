"""The Optuna study of a run: storage, sampler, resume, and the search loop.

>>> study = run_search(load_search_config("quickstart"), Path("runs/quickstart"))  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection

from nas.core.config import SearchConfig, parse_search_config
from nas.core.errors import UserError
from nas.core.vocab import OBJECTIVES
from nas.data.splits import Splits, load_raw, split
from nas.hardware.latency_source import latency_source
from nas.hardware.profiles import HardwareProfile, load_profile
from nas.search.evaluate import EvalContext, Trainer, artifact_precision
from nas.search.objective import Objective
from nas.train.trainer import train

log = logging.getLogger(__name__)

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def config_to_dict(cfg: Any) -> Any:
    """Plain YAML-able data of a config (tuples become lists); parse_search_config inverts it."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    return cfg


def directions(objectives: tuple[str, ...]) -> list[StudyDirection]:
    """Optuna study directions of the search objectives."""
    return [StudyDirection.MAXIMIZE if OBJECTIVES[name] == "maximize" else StudyDirection.MINIMIZE
            for name in objectives]


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def storage_from_url(url: str, *, heartbeat: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL: any SQLAlchemy URL (``sqlite:///``, ``postgresql://``...), or
    ``journal:PATH`` for Optuna's journal file, which many workers on one file system can share.

    RDB storages get heartbeats, so a later run marks trials of a killed process as failed instead
    of running; Optuna runs heartbeats only inside Study.optimize, so ask-and-tell studies go without.
    """
    if url.startswith("journal:"):

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    if not heartbeat:
        return optuna.storages.RDBStorage(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90)


def make_sampler(cfg: SearchConfig, *, seed_offset: int) -> optuna.samplers.BaseSampler:
    """Seeded sampler; ``seed_offset`` (trials already in the study) keeps a resumed run from
    redrawing the architectures of its first trials."""
    seed = cfg.seed + seed_offset
    if cfg.search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=max(2, cfg.search.population))
    return optuna.samplers.NSGAIISampler(population_size=cfg.search.population, seed=seed)


def check_run_config(run_dir: Path, cfg: SearchConfig) -> None:
    """Store the config in the run folder, or refuse to resume a run made with a different one."""
    path = run_dir / "config.yaml"
    data = config_to_dict(cfg)
    if path.exists():
        stored = config_to_dict(load_run_config(run_dir))  # keys added since take their defaults
        for d in (stored, data):
            d.get("search", {}).pop("trials", None)
            d.pop("final", None)  # final training happens after the search (hwnas train)
        if stored != data:
            raise UserError(f"{run_dir} holds a run of a different config; use --out for a new run folder "
                            f"(only search.trials and the final section may change when resuming)")
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def load_run_config(run_dir: Path) -> SearchConfig:
    path = run_dir / "config.yaml"
    if not path.exists():
        raise UserError(f"{run_dir} is not a run folder (no config.yaml); allowed: a folder written by hwnas search")
    return parse_search_config(yaml.safe_load(path.read_text()), where=str(path))


def load_splits(cfg: SearchConfig, *, cache_dir: Path) -> Splits:
    return split(load_raw(cfg.data, cache_dir=cache_dir), val_fraction=cfg.data.val_fraction, seed=cfg.seed)


def open_study(cfg: SearchConfig, storage_url: str, *, create: bool = True, name: str | None = None,
               heartbeat: bool = True) -> optuna.Study:
    """The run's study (``name`` defaults to the config's; baselines live in ``<name>-baselines``)."""
    name = name or cfg.name
    storage = storage_from_url(storage_url, heartbeat=heartbeat)
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
        offset = len(existing.trials)
    except KeyError:
        if not create:
            raise UserError(f"no study named {name!r} in {storage_url}") from None
        offset = 0
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                directions=directions(cfg.search.objectives),
                                sampler=make_sampler(cfg, seed_offset=offset))
    if list(study.directions) != directions(cfg.search.objectives):
        raise UserError(f"study {name!r} in {storage_url} has other objectives than {cfg.search.objectives}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(cfg.search.objectives))
    return study


def run_search(cfg: SearchConfig, run_dir: Path, *, storage: str | None = None, profile: HardwareProfile | None = None,
               splits: Splits | None = None, callbacks: Sequence[TrialCallback] = (),
               on_start: Callable[[int, str], None] | None = None, trainer: Trainer = train) -> optuna.Study:
    """Run (or resume) the search until ``cfg.search.trials`` trials have finished.

    Finished means complete or rejected as over budget. Failed trials stay in the study as failed
    but do not count: the run makes up for them (at most as many failures as trials wanted).
    ``trainer`` trains each candidate (tests pass a fake).
    """
    profile = profile or load_profile(cfg.search.profile)
    # a target that cannot price what the search exports is refused before the run folder is written
    latency_source(profile, precision=artifact_precision(cfg, profile))
    check_run_config(run_dir, cfg)
    splits = splits or load_splits(cfg, cache_dir=run_dir.parent / ".cache")
    study = open_study(cfg, storage or default_storage(run_dir))
    done = sum(t.state in FINISHED for t in study.trials)
    remaining = max(0, cfg.search.trials - done)
    study.set_user_attr("profile", profile.tag)
    study.set_user_attr("dataset", splits.name)
    log.info("study %s: %d trial(s) finished, %d to run", cfg.name, done, remaining)
    if remaining:
        objective = Objective(EvalContext.for_search(cfg, profile, splits, trainer=trainer), run_dir, on_start=on_start)
        # Failed trials are made up for, up to as many failures as trials wanted, then we stop.
        stop = optuna.study.MaxTrialsCallback(cfg.search.trials, states=FINISHED)
        study.optimize(objective, n_trials=2 * remaining, catch=(Exception,), callbacks=[*callbacks, stop],
                       gc_after_trial=True)
    return study


def find_study(cfg: SearchConfig, storage_url: str, name: str) -> optuna.Study | None:
    """The named study of a run if it exists, else None (other problems still raise)."""
    if name not in optuna.study.get_all_study_names(storage_from_url(storage_url, heartbeat=False)):
        return None
    return open_study(cfg, storage_url, create=False, name=name, heartbeat=False)
