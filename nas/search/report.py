"""Compute, then present: the trials and front tables of a run, and the files of a run.

Functions here return data (pandas tables); :mod:`nas.search.plots` draws them and the CLI prints them.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import optuna
import pandas as pd

log = logging.getLogger(__name__)

FRONT_COLUMNS = ["source", "trial", "name", "arch", "accuracy", "val_accuracy", "macs", "params", "latency_ms",
                 "latency_kind", "peak_memory_mb", "weight_mb", "peak_activation_mb", "file_bytes", "feasible",
                 "dominated_by_front", "onnx_path"]
_ATTR_COLUMNS = ["baseline", "arch", "test_accuracy", "val_accuracy", "macs", "parameters", "latency_ms",
                 "latency_kind", "peak_memory_mb", "weight_mb", "peak_activation_mb", "file_bytes", "feasible",
                 "rejected_before_training", "infeasible_reason", "error", "onnx_path", "seconds", "seed",
                 "profile", "profile_version"]
COMPLETE = optuna.trial.TrialState.COMPLETE


def trials_table(study: optuna.Study | None) -> pd.DataFrame:
    """One row per trial, every state, with costs, accuracies and the sampled parameters."""
    rows = []
    for t in study.trials if study else []:
        row: dict[str, object] = {"trial": t.number, "state": t.state.name}
        row.update({k: t.user_attrs.get(k) for k in _ATTR_COLUMNS})
        row.update({k: v for k, v in t.user_attrs.items() if k.startswith(("latency_ms_pred_", "latency_ms_meas_"))})
        row["duration_s"] = t.duration.total_seconds() if t.duration else None
        row.update({f"param.{k}": v for k, v in t.params.items()})
        rows.append(row)
    table = pd.DataFrame(rows, columns=None if rows else ["trial", "state", *_ATTR_COLUMNS])
    return table.rename(columns={"test_accuracy": "accuracy", "parameters": "params"})


def model_dir(trial: optuna.trial.FrozenTrial) -> Path:
    """Where a trial's deployable files go: ``models/<trial>`` or ``models/baseline-<name>``."""
    name = trial.user_attrs.get("baseline")
    return Path("models") / (f"baseline-{name}" if name else f"{trial.number:04d}")


def _front_row(t: optuna.trial.FrozenTrial, source: str) -> dict[str, object]:
    a = t.user_attrs
    return {"source": source, "trial": t.number, "name": a.get("baseline", ""), "arch": a["arch"],
            "accuracy": a["test_accuracy"], "val_accuracy": a["val_accuracy"], "macs": a["macs"],
            "params": a["parameters"], "latency_ms": a["latency_ms"], "latency_kind": a["latency_kind"],
            "peak_memory_mb": a["peak_memory_mb"], "weight_mb": a["weight_mb"],
            "peak_activation_mb": a["peak_activation_mb"], "file_bytes": a["file_bytes"], "feasible": a["feasible"],
            "dominated_by_front": False, "onnx_path": str(model_dir(t) / "model.onnx")}


def _dominated(row: pd.Series, front: pd.DataFrame) -> bool:
    """Some front trial is at least as good on test accuracy, latency and MACs, and better on one."""
    for _, f in front.iterrows():
        no_worse = f["accuracy"] >= row["accuracy"] and f["latency_ms"] <= row["latency_ms"] and f["macs"] <= row["macs"]
        better = f["accuracy"] > row["accuracy"] or f["latency_ms"] < row["latency_ms"] or f["macs"] < row["macs"]
        if no_worse and better:
            return True
    return False


def front_table(study: optuna.Study | None, baselines: optuna.Study | None = None) -> pd.DataFrame:
    """Feasible Pareto-optimal searched trials (Optuna's constrained ``best_trials``), best
    accuracy first, then every trained baseline (``source`` says which), each marked with whether
    a front trial dominates it.

    The front is chosen on the search objectives (validation accuracy among them); ``accuracy``
    is the test accuracy of the exported ONNX file.
    """
    front = pd.DataFrame([_front_row(t, "search") for t in (study.best_trials if study else [])], columns=FRONT_COLUMNS)
    front = front.sort_values(["accuracy", "latency_ms"], ascending=[False, True], ignore_index=True)
    trained = [t for t in (baselines.trials if baselines else []) if t.state == COMPLETE]
    base = pd.DataFrame([_front_row(t, "baseline") for t in trained], columns=FRONT_COLUMNS)
    if len(base):
        base["dominated_by_front"] = [_dominated(row, front) for _, row in base.iterrows()]
        base = base.sort_values("accuracy", ascending=False)
        front = pd.concat([front, base], ignore_index=True) if len(front) else base.reset_index(drop=True)
    return front


def export_trial_files(study: optuna.Study, run_dir: Path, number: int) -> Path:
    """Copy a completed trial's exported ONNX into its model folder with its arch and metrics."""
    trial = study.trials[number] if 0 <= number < len(study.trials) else None
    if trial is None or trial.state != COMPLETE or "onnx_path" not in trial.user_attrs:
        raise KeyError(f"trial {number} has no exported model; allowed: completed trials "
                       f"{[t.number for t in study.trials if t.state == COMPLETE]}")
    target = run_dir / model_dir(trial)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / trial.user_attrs["onnx_path"], target / "model.onnx")
    (target / "arch.txt").write_text(trial.user_attrs["arch"] + "\n")
    metrics = {"trial": number, "params": trial.params, **trial.user_attrs,
               "objectives": dict(zip(study.metric_names or [], trial.values or []))}
    metrics["onnx_path"] = str(model_dir(trial) / "model.onnx")
    (target / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return target / "model.onnx"


def write_outputs(run_dir: Path, *, budgets: dict[str, float | None], search: optuna.Study | None,
                  baselines: optuna.Study | None = None) -> pd.DataFrame:
    """trials.csv, baselines.csv, front.csv, front.png and models/ for every front trial and
    trained baseline. Either study may be absent (a run with baselines only, or no baselines)."""
    from nas.search.plots import plot_front

    trials = trials_table(search)
    trials.to_csv(run_dir / "trials.csv", index=False)
    base_trials = trials_table(baselines) if baselines else None
    if base_trials is not None:
        base_trials.to_csv(run_dir / "baselines.csv", index=False)
    front = front_table(search, baselines)
    front.to_csv(run_dir / "front.csv", index=False)
    for row in front.itertuples():
        export_trial_files(search if row.source == "search" else baselines, run_dir, int(row.trial))  # type: ignore[arg-type]
    title = search.study_name if search else baselines.study_name if baselines else run_dir.name
    profile = next((f"{t.user_attrs['profile']}@{t.user_attrs['profile_version']}" for s in (search, baselines) if s
                    for t in s.trials if "profile" in t.user_attrs), "")
    plot_front(trials, front, budgets=budgets, path=run_dir / "front.png", title=title, baseline_trials=base_trials,
               profile=profile)
    return front

