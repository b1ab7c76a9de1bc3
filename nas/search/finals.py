"""Final models of a run (``hwnas train``): chosen trials (or any arch string) trained to
convergence with their compression recipe, exported and measured on the exported files like a
trial, into ``models/<trial>/final/``; ``finals.csv`` sets proxy and final accuracy side by side.

A final that finished (its ``metrics.json`` written) is not trained again unless asked; one that was
killed resumes from its last epoch checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from compress.recipe import Recipe, parse_recipe
from nas.core.config import FinalConfig, SearchConfig
from nas.core.errors import UserError
from nas.core.files import write_atomic
from nas.core.schema import from_mapping
from nas.data.splits import Splits
from nas.hardware.profiles import HardwareProfile
from nas.search.evaluate import CandidateFailed, EvalContext, TrialFiles, evaluate
from nas.search.record import CandidateResult, result_of
from nas.space.arch import ArchSpec, parse
from nas.train.final import EpochReport, FinalTrainer

log = logging.getLogger(__name__)

FINAL_KEY = "final"  # the final training's settings in a final's metrics.json

FINALS_COLUMNS = ["trial", "stage", "arch", "recipe", "proxy_accuracy", "final_accuracy", "final_val_accuracy",
                  "gain_points", "epochs", "macs", "params", "latency_ms", "latency_kind", "host_latency_ms",
                  "file_bytes", "files", "train_seconds", "final_dir"]


@dataclass(frozen=True)
class FinalJob:
    """One model to train to convergence: a trial of the search, or an arch string given directly."""

    key: str  # the model folder name: "0007" for trial 7, "arch-<hash>" for an arch string
    spec: ArchSpec
    recipe: Recipe | None
    seed: int
    trial: int | None = None
    proxy: CandidateResult | None = None
    stage: str = "final"  # "final", or "final-<name>" for a further stage (e.g. a warm restart)

    @property
    def rel_dir(self) -> str:
        return f"models/{self.key}/{self.stage}"


def _recipe_of(result: CandidateResult) -> Recipe | None:
    if not result.recipe or result.recipe == "none":
        return None
    return parse_recipe(json.loads(result.recipe), where=f"recipe of {result.arch}")


def trial_jobs(study: optuna.Study, numbers: Sequence[int]) -> list[FinalJob]:
    """Jobs for completed trials of ``study`` (each keeps its recipe and seed)."""
    complete = {t.number: t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    jobs = []
    for number in numbers:
        result = result_of(complete[number]) if number in complete else None
        if result is None or result.test_accuracy is None:
            raise UserError(f"trial {number} is not a completed, trained trial; allowed: {sorted(complete)}")
        jobs.append(FinalJob(f"{number:04d}", parse(result.arch), _recipe_of(result), result.seed, number, result))
    return jobs


def front_trials(study: optuna.Study) -> list[int]:
    """The search's feasible Pareto-optimal trials (what front.csv lists as ``search``)."""
    return sorted(t.number for t in study.best_trials)


# How hwnas train starts a trial whose weights came from a supernet: fine-tuned from them
# ("inherited") or from random weights ("scratch"), whichever benchmarks/supernet.py found better:
# from scratch, 88.15% mean test accuracy against 87.91% fine-tuned (2 front trials, 2 epochs on all
# 54,000 quickstart training images, 2026-12-03); a margin within noise, so both stay offered.


def inherited_start(job: FinalJob, run_dir: Path, init: str) -> Path | None:
    """The weights a final of ``job`` starts from under ``init``: the trial's inherited weights
    (``weights.pt``, BatchNorm re-estimated) for ``inherited`` when the trial took them from a
    supernet; None (random weights) otherwise."""
    proxy = job.proxy
    if init != "inherited" or proxy is None or proxy.inherited is None or proxy.weights_path is None:
        return None
    path = run_dir / proxy.weights_path
    if not path.exists():
        raise UserError(f"{path} is missing: the inherited weights of trial {job.trial}; allowed: --init scratch")
    return path


def arch_job(arch: str, seed: int) -> FinalJob:
    """A job for an arch string that is no trial of the run (e.g. a benchmark's reference network)."""
    spec = parse(arch)
    digest = hashlib.sha256(spec.format().encode()).hexdigest()[:10]
    return FinalJob(f"arch-{digest}", spec, None, seed)


def _init_record(init_from: Path | None, sha256: str | None) -> dict[str, Any] | None:
    """Where a warm-started final began: the weights file, its hash, and (when it is another
    final's) that final's training history, so the total training is on record."""
    if init_from is None:
        return None
    before = init_from.parent / "metrics.json"
    history = json.loads(before.read_text()).get("history") if before.exists() else None
    return {"path": str(init_from), "sha256": sha256, "history": history}


def final_config_of(metrics: Mapping[str, Any]) -> FinalConfig | None:
    """The final training settings a final's ``metrics.json`` records (None for a search trial);
    settings added since the file was written take their defaults."""
    if FINAL_KEY not in metrics:
        return None
    return from_mapping(FinalConfig, metrics[FINAL_KEY], f"{FINAL_KEY} in metrics.json")


def final_metrics_path(run_dir: Path, job: FinalJob) -> Path:
    return run_dir / job.rel_dir / "metrics.json"


def train_final(job: FinalJob, *, cfg: SearchConfig, final: FinalConfig, profile: HardwareProfile, splits: Splits,
                run_dir: Path, on_epoch: Callable[[EpochReport], None] | None = None,
                restart: bool = False, init_from: Path | None = None) -> dict[str, Any]:
    """Train ``job`` to convergence (resuming its checkpoint), compress it with its recipe, export
    it, measure the files, and write ``metrics.json``; returns those metrics."""
    files = TrialFiles(run_dir, job.rel_dir)
    created = not files.dir.exists()
    files.dir.mkdir(parents=True, exist_ok=True)
    checkpoint = files.dir / "checkpoint.pt"
    if restart:
        checkpoint.unlink(missing_ok=True)
        final_metrics_path(run_dir, job).unlink(missing_ok=True)
    trainer = FinalTrainer(checkpoint, splits.x_val, splits.y_val, on_epoch=on_epoch, init_from=init_from)
    context = EvalContext.for_search(dataclasses.replace(cfg, train=final), profile, splits, trainer=trainer)
    try:
        record = evaluate(job.spec, job.recipe, context, seed=job.seed, files=files, gate=False)
    except CandidateFailed as exc:
        cause = exc.__cause__
        if isinstance(cause, UserError) and created and not checkpoint.exists():
            shutil.rmtree(files.dir, ignore_errors=True)  # refused before a first epoch: leave nothing behind
        if isinstance(cause, (UserError, KeyboardInterrupt)):
            raise cause from None
        if isinstance(cause, FloatingPointError):  # diverged: the user's schedule, not a bug
            raise UserError(f"final training of {job.key} failed: {cause}") from None
        raise
    metrics = {"key": job.key, "trial": job.trial, FINAL_KEY: dataclasses.asdict(final), "history": trainer.history,
               "proxy_test_accuracy": job.proxy.test_accuracy if job.proxy else None,
               "proxy_val_accuracy": job.proxy.val_accuracy if job.proxy else None, "stage": job.stage,
               "init_from": _init_record(init_from, trainer.init_sha256), **record.to_attrs()}
    write_atomic(final_metrics_path(run_dir, job), (json.dumps(metrics, indent=2, sort_keys=True, default=str)
                                                    + "\n").encode())
    write_atomic(files.dir / "arch.txt", (job.spec.format() + "\n").encode())
    return metrics


def finals_table(run_dir: Path) -> pd.DataFrame:
    """One row per finished final model of the run, proxy and final accuracy side by side."""
    rows = []
    for path in sorted((run_dir / "models").glob("*/final*/metrics.json")):
        m = json.loads(path.read_text())
        proxy, final = m.get("proxy_test_accuracy"), m.get("test_accuracy")
        files = sorted(p.name for p in path.parent.iterdir()
                       if p.suffix in (".onnx", ".tflite") and not p.name.startswith("."))
        init = m.get("init_from") or {}
        epochs = len(m.get("history", [])) + len(init.get("history") or [])
        rows.append({"trial": m.get("trial"), "stage": m.get("stage", "final"), "arch": m.get("arch"), "recipe": m.get("recipe"),
                     "proxy_accuracy": proxy, "final_accuracy": final, "final_val_accuracy": m.get("val_accuracy"),
                     "gain_points": round(100 * (final - proxy), 2) if proxy is not None and final is not None else None,
                     "epochs": epochs, "macs": m.get("macs"), "params": m.get("parameters"),
                     "latency_ms": m.get("latency_ms"), "latency_kind": m.get("latency_kind"),
                     "host_latency_ms": m.get("latency_ms_meas_cpu"), "file_bytes": m.get("file_bytes"),
                     "files": " ".join(files), "train_seconds": m.get("train_seconds"),
                     "final_dir": str(path.parent.relative_to(run_dir))})
    table = pd.DataFrame(rows, columns=FINALS_COLUMNS)
    return table.sort_values("final_accuracy", ascending=False, ignore_index=True) if len(table) else table
