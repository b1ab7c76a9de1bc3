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
from optuna.study import StudyDirection

from nas.core.config import SearchConfig, parse_search_config
from nas.core.errors import UserError
from nas.core.files import write_atomic
from nas.core.vocab import OBJECTIVES
from nas.data.splits import Splits, load_raw, split
from nas.hardware.latency_source import latency_source
from nas.hardware.profiles import HardwareProfile, load_profile
from nas.search._optuna import storage_of
from nas.search.artifacts import open_store
from nas.search.callbacks import ChanceGuard, OutputsCallback, StopRule
from nas.search.evaluate import EvalContext, Trainer, artifact_kinds, artifact_precision
from nas.search.objective import Objective
from nas.search.on_supernet import inheriting, open_supernet
from nas.search.run_folder import check_run_dir, clean_orphans, default_storage, save_storage
from nas.search.slots import counts
from nas.search.storage import redact, retrying, storage_from_url
from nas.search.redraw import RedrawSampler
from nas.search.verify_front import check_verify_profile
from nas.search.workers import recover_stale, register_worker, requeue_interrupted, worker_seed
from nas.train.trainer import pick_device, train

log = logging.getLogger(__name__)

TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def baselines_study_name(cfg: SearchConfig) -> str:
    """The sibling study of a run's handcrafted baselines (:mod:`nas.search.baselines`)."""
    return f"{cfg.name}-baselines"


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


def make_sampler(cfg: SearchConfig, *, worker: int) -> optuna.samplers.BaseSampler:
    """The sampler of worker ``worker`` (its index in the study, :mod:`nas.search.workers`):
    seeded from the study seed and that index, so workers started together draw different
    candidates and a resumed run does not redraw its first trials.

    Budgets reach every sampler as Optuna constraints (``Trial.set_constraint``, which replaced
    ``constraints_func`` in Optuna 5). TPE learns from all of them, candidates rejected before
    training included (pruned trials with constraint values form its infeasible group); Optuna's
    NSGA-II and GP read completed trials only, so they learn a budget that the exported file
    misses, not one the architecture misses before training (those cost a pricing, not a training).
    A model-based sampler draws at random after it proposed a duplicate (:mod:`nas.search.redraw`)."""
    seed = worker_seed(cfg.seed, worker)
    if cfg.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return RedrawSampler(_model_based(cfg, seed), optuna.samplers.RandomSampler(seed=seed + 1))


def _model_based(cfg: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    startup = max(2, cfg.search.population)  # random draws before a model-based sampler models anything
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if cfg.search.sampler == "tpe":  # group: one joint model per set of parameters that occur together
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=startup)
        if cfg.search.sampler == "gp":  # the blocks a depth adds are outside its fixed space: drawn at random
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False,
                                             independent_sampler=optuna.samplers.RandomSampler(seed=seed))
        return optuna.samplers.NSGAIISampler(population_size=cfg.search.population, seed=seed)


def check_run_config(run_dir: Path, cfg: SearchConfig) -> None:
    """Refuse to resume a run made with a different config (writes nothing)."""
    path = run_dir / "config.yaml"
    data = config_to_dict(cfg)
    if path.exists():
        stored = config_to_dict(load_run_config(run_dir))  # keys added since take their defaults
        for d in (stored, data):
            d.get("search", {}).pop("trials", None)
            d.pop("final", None)  # final training happens after the search (hwnas train)
            d.pop("supernet", None)  # the supernet is trained before (hwnas supernet train); its file is checked
        if stored != data:
            raise UserError(f"{run_dir} holds a run of a different config; use --out for a new run folder "
                            f"(only search.trials and the final section may change when resuming)")


def write_run_config(run_dir: Path, cfg: SearchConfig) -> None:
    """Store the config in the run folder (after everything it names has been checked)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode())


def load_run_config(run_dir: Path) -> SearchConfig:
    path = run_dir / "config.yaml"
    if not path.exists():
        raise UserError(f"{run_dir} is not a run folder (no config.yaml); allowed: a folder written by hwnas search")
    return parse_search_config(yaml.safe_load(path.read_text()), where=str(path))


def load_splits(cfg: SearchConfig, *, cache_dir: Path) -> Splits:
    return split(load_raw(cfg.data, cache_dir=cache_dir), val_fraction=cfg.data.val_fraction, seed=cfg.seed)


def open_study(cfg: SearchConfig, storage_url: str, *, create: bool = True, name: str | None = None,
               heartbeat: bool = True, worker: int = 0) -> optuna.Study:
    """The run's study (``name`` defaults to the config's; baselines live in ``<name>-baselines``);
    ``worker`` seeds the sampler (:func:`make_sampler`)."""
    name = name or cfg.name
    storage = storage_from_url(storage_url, heartbeat=heartbeat)
    if not create and name not in retrying("cannot read", storage_url, lambda: optuna.get_all_study_names(storage)):
        raise UserError(f"no study named {name!r} in {redact(storage_url)}")
    if create:
        study = retrying("cannot create the study in", storage_url, lambda: optuna.create_study(
            study_name=name, storage=storage, load_if_exists=True, directions=directions(cfg.search.objectives),
            sampler=make_sampler(cfg, worker=worker)))
    else:  # reading only (front, export, tables): nothing is written, so a read-only run folder works
        study = retrying("cannot read the study in", storage_url, lambda: optuna.load_study(
            study_name=name, storage=storage, sampler=make_sampler(cfg, worker=worker)))
    if list(study.directions) != directions(cfg.search.objectives):
        raise UserError(f"study {name!r} in {redact(storage_url)} has other objectives than {cfg.search.objectives}")
    if study.metric_names is None and create:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(cfg.search.objectives))
    return study


def prepare_search(cfg: SearchConfig, run_dir: Path, *, profile: HardwareProfile | None = None,
                   splits: Splits | None = None) -> tuple[HardwareProfile, Splits]:
    """Check everything a search names (profile, what it exports, run folder, data) before
    anything is written; returns the profile and the data."""
    profile = profile or load_profile(cfg.search.profile)
    # a target that cannot price what the search exports is refused before the run folder is written
    latency_source(profile, precision=artifact_precision(cfg, profile), budget_quantile=cfg.search.budget_quantile)
    artifact_kinds(cfg, profile)
    pick_device(cfg.train.device)  # cuda without a GPU is refused before any trial
    check_verify_profile(cfg.search.verify_front)
    check_run_dir(run_dir)
    check_run_config(run_dir, cfg)
    splits = splits or load_splits(cfg, cache_dir=run_dir.parent / ".cache")
    if cfg.search.strategy == "supernet":
        open_supernet(cfg, splits)  # a missing or mismatched supernet is refused before the folder is written
    return profile, splits


def _check_new_folder_can_join(cfg: SearchConfig, run_dir: Path, storage: str,
                               opened: optuna.storages.BaseStorage) -> None:
    """A new run folder on a storage whose study already has finished trials joins another run
    (a worker on another machine). Its models, tables and dashboard need those trials' files, which
    only a shared ``search.artifact_store`` gives; without one the join is refused, naming both
    remedies, before anything is written."""
    if (run_dir / "config.yaml").exists() or cfg.search.artifact_store is not None:
        return
    if cfg.name not in retrying("cannot read", storage, lambda: optuna.get_all_study_names(opened)):
        return
    finished = counts(optuna.load_study(study_name=cfg.name, storage=opened))[0]
    if finished:
        raise UserError(f"storage {redact(storage)} already holds study {cfg.name!r} with {finished} finished trials "
                        f"of another run folder, whose files {run_dir} cannot reach; allowed: --out that run's "
                        "folder, or (a worker on another machine) search.artifact_store set to a folder both share")


def create_run(cfg: SearchConfig, run_dir: Path, storage: str, *, join: bool = False) -> tuple[optuna.Study, int]:
    """Open (creating if new) the run's study, then write the run's config and storage: the
    folder is written only once the storage works. ``join``: as a new worker, whose index
    (:func:`nas.search.workers.register_worker`) seeds its sampler; returns the study and the index."""
    opened = None if storage == default_storage(run_dir) else storage_from_url(storage, heartbeat=False)
    if opened is not None:
        _check_new_folder_can_join(cfg, run_dir, storage, opened)
    run_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    worker = 0
    if join:
        worker = retrying("cannot register a worker in", storage,
                          lambda: register_worker(opened or storage_from_url(storage, heartbeat=False), cfg.name))
    study = open_study(cfg, storage, worker=worker)
    write_run_config(run_dir, cfg)
    save_storage(run_dir, storage)
    return study, worker


def start_worker(cfg: SearchConfig, run_dir: Path, storage: str) -> tuple[optuna.Study, int]:
    """Join the run's study as a new worker (creating the run if new); fail and re-enqueue the
    trials of dead workers, and clean their files."""
    study, worker = create_run(cfg, run_dir, storage, join=True)
    recovered = recover_stale(study) + requeue_interrupted(study)
    removed = clean_orphans(run_dir, study)
    log.info("worker %d on study %s: recovered trials %s, removed %d leftover files", worker, cfg.name, recovered,
             len(removed))
    return study, worker


def run_search(cfg: SearchConfig, run_dir: Path, *, storage: str | None = None, profile: HardwareProfile | None = None,
               splits: Splits | None = None, callbacks: Sequence[TrialCallback] = (),
               on_start: Callable[[int, str], None] | None = None, trainer: Trainer = train,
               on_ready: Callable[[optuna.Study, int], None] | None = None) -> optuna.Study:
    """Run (or resume, or join as one more worker) the search until ``cfg.search.trials``
    trials have finished in the study, whichever worker finished them.

    Finished means complete or rejected as over budget. Failed trials stay in the study as failed
    but do not count: the run makes up for them (at most as many failures as trials wanted).
    trials.csv, front.csv and models/ are rewritten as each trial ends. ``trainer`` trains each
    candidate (tests pass a fake); ``on_ready(study, worker)`` is called once the worker joined.
    """
    profile, splits = prepare_search(cfg, run_dir, profile=profile, splits=splits)
    storage = storage or default_storage(run_dir)
    study, worker = start_worker(cfg, run_dir, storage)
    if on_ready is not None:
        on_ready(study, worker)
    finished, _, _ = counts(study)
    study.set_user_attr("profile", profile.tag)
    study.set_user_attr("dataset", splits.name)
    log.info("study %s: %d trial(s) finished, %d to run", cfg.name, finished, max(0, cfg.search.trials - finished))
    if finished < cfg.search.trials:
        context = EvalContext.for_search(cfg, profile, splits, trainer=trainer)
        if cfg.search.strategy == "supernet":
            context = inheriting(context, open_supernet(cfg, splits))
        store = open_store(run_dir, cfg.search.artifact_store)
        objective = Objective(context, run_dir, on_start=on_start, total=cfg.search.trials, store=store)
        baselines = find_study(cfg, storage, baselines_study_name(cfg))
        try:
            study.optimize(objective, n_trials=20 * cfg.search.trials + 50, catch=(Exception,), gc_after_trial=True,
                           callbacks=[*callbacks, StopRule(cfg.search.trials),
                                      OutputsCallback(run_dir, cfg.search.budgets, baselines, store), ChanceGuard()])
        except Exception:
            # a storage that stayed down: Optuna's clean-up touches it again and may fail otherwise on the
            # way out (an UnboundLocalError in its _run_trial); the outage is the one line to show
            gave_up = getattr(storage_of(study), "gave_up", None)
            if gave_up is not None:
                raise gave_up from None
            raise
    return study


def find_study(cfg: SearchConfig, storage_url: str, name: str) -> optuna.Study | None:
    """The named study of a run if it exists, else None (other problems still raise)."""
    storage = storage_from_url(storage_url, heartbeat=False)
    if name not in retrying("cannot read", storage_url, lambda: optuna.get_all_study_names(storage)):
        return None
    return open_study(cfg, storage_url, create=False, name=name, heartbeat=False)
