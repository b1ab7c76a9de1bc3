"""Compute, then present: the trials and front tables of a study, and the files of a run.

Functions here return data (pandas tables); :mod:`nas.plots` draws them and the CLI prints them.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import optuna
import pandas as pd

log = logging.getLogger(__name__)

FRONT_COLUMNS = ["trial", "arch", "accuracy", "val_accuracy", "macs", "params", "latency_ms", "latency_kind",
                 "peak_memory_mb", "weight_mb", "peak_activation_mb", "file_bytes", "onnx_path"]
_ATTR_COLUMNS = ["arch", "test_accuracy", "val_accuracy", "macs", "parameters", "latency_ms", "latency_kind",
                 "peak_memory_mb", "weight_mb", "peak_activation_mb", "file_bytes", "feasible",
                 "rejected_before_training", "infeasible_reason", "error", "onnx_path", "seconds", "seed",
                 "profile", "profile_version"]


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial, every state, with costs, accuracies and the sampled parameters."""
    rows = []
    for t in study.trials:
        row: dict[str, object] = {"trial": t.number, "state": t.state.name}
        row.update({k: t.user_attrs.get(k) for k in _ATTR_COLUMNS})
        row["duration_s"] = t.duration.total_seconds() if t.duration else None
        row.update({f"param.{k}": v for k, v in t.params.items()})
        rows.append(row)
    table = pd.DataFrame(rows, columns=None if rows else ["trial", "state", *_ATTR_COLUMNS])
    return table.rename(columns={"test_accuracy": "accuracy", "parameters": "params"})


def front_table(study: optuna.Study) -> pd.DataFrame:
    """Feasible Pareto-optimal trials (Optuna's constrained ``best_trials``), best accuracy first.

    The front is chosen on the search objectives (validation accuracy among them); ``accuracy``
    is the test accuracy of the exported ONNX file.
    """
    rows = []
    for t in study.best_trials:
        a = t.user_attrs
        rows.append({"trial": t.number, "arch": a["arch"], "accuracy": a["test_accuracy"],
                     "val_accuracy": a["val_accuracy"], "macs": a["macs"], "params": a["parameters"],
                     "latency_ms": a["latency_ms"], "latency_kind": a["latency_kind"],
                     "peak_memory_mb": a["peak_memory_mb"], "weight_mb": a["weight_mb"],
                     "peak_activation_mb": a["peak_activation_mb"], "file_bytes": a["file_bytes"],
                     "onnx_path": str(Path("models") / f"{t.number:04d}" / "model.onnx")})
    table = pd.DataFrame(rows, columns=FRONT_COLUMNS)
    return table.sort_values(["accuracy", "latency_ms"], ascending=[False, True], ignore_index=True)


def export_trial_files(study: optuna.Study, run_dir: Path, number: int) -> Path:
    """Copy a completed trial's exported ONNX into ``models/<trial>/`` with its arch and metrics."""
    trial = study.trials[number] if 0 <= number < len(study.trials) else None
    if trial is None or trial.state != optuna.trial.TrialState.COMPLETE or "onnx_path" not in trial.user_attrs:
        raise KeyError(f"trial {number} has no exported model; allowed: completed trials "
                       f"{[t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]}")
    target = run_dir / "models" / f"{number:04d}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / trial.user_attrs["onnx_path"], target / "model.onnx")
    (target / "arch.txt").write_text(trial.user_attrs["arch"] + "\n")
    metrics = {"trial": number, "params": trial.params, **trial.user_attrs,
               "objectives": dict(zip(study.metric_names or [], trial.values or []))}
    metrics["onnx_path"] = str(Path("models") / f"{number:04d}" / "model.onnx")
    (target / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return target / "model.onnx"


def write_outputs(study: optuna.Study, run_dir: Path, *, budgets: dict[str, float | None]) -> pd.DataFrame:
    """trials.csv, front.csv, front.png and models/<trial>/ for every Pareto trial."""
    from nas.plots import plot_front

    trials = trials_table(study)
    front = front_table(study)
    trials.to_csv(run_dir / "trials.csv", index=False)
    front.to_csv(run_dir / "front.csv", index=False)
    for number in front["trial"]:
        export_trial_files(study, run_dir, int(number))
    plot_front(trials, front, budgets=budgets, path=run_dir / "front.png", title=study.study_name)
    return front
