"""Compute, then present: the trials and front tables of a run, and the files of a run.

Functions here return data (pandas tables); :mod:`nas.search.plots` draws them and the CLI prints
them. Trials are read through their record (:func:`nas.search.record.result_of`).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
import pandas as pd

from nas.core.files import write_atomic
from nas.search.artifacts import trial_file
from nas.search.model_card import card_contract, model_card
from nas.search.plots import plot_front
from nas.search.record import TABLE_COLUMNS, CandidateResult, result_of
from nas.search.slots import flagged_at_chance, skipped_reason
from nas.space.arch import parse

log = logging.getLogger(__name__)

FRONT_COLUMNS = ["source", "trial", "name", "arch", "accuracy", "val_accuracy", "macs", "params", "latency_ms",
                 "latency_band_lo", "latency_band_hi", "latency_kind", "latency_caveat", "peak_memory_mb", "weight_mb", "peak_activation_mb", "file_bytes",
                 "feasible", "dominated_by_front", "artifact", "onnx_path"]
COMPLETE = optuna.trial.TrialState.COMPLETE
KEEP_MARK = ".exported-by-hand"  # in a model folder: the user asked for it, so it stays off the front too


def trials_table(study: optuna.Study | None) -> pd.DataFrame:
    """One row per trial, every state, with costs, accuracies and the sampled parameters."""
    rows = []
    for t in study.trials if study else []:
        row: dict[str, object] = {"trial": t.number, "state": t.state.name}
        result = result_of(t)
        row.update(result.table_row() if result else dict.fromkeys(TABLE_COLUMNS))
        row["duration_s"] = t.duration.total_seconds() if t.duration else None
        row["skipped"] = skipped_reason(t)
        row["at_chance"] = flagged_at_chance(t)
        row.update({f"param.{k}": v for k, v in t.params.items()})
        rows.append(row)
    table = pd.DataFrame(rows, columns=None if rows else ["trial", "state", *TABLE_COLUMNS])
    return table.rename(columns={"test_accuracy": "accuracy", "parameters": "params"})


def model_dir(result: CandidateResult, number: int) -> Path:
    """Where a trial's deployable files go: ``models/<trial>`` or ``models/baseline-<name>``."""
    return Path("models") / (f"baseline-{result.baseline}" if result.baseline else f"{number:04d}")


def _front_row(t: optuna.trial.FrozenTrial, source: str) -> dict[str, object]:
    r = result_of(t)
    assert r is not None and r.costs is not None  # a complete trial has its record
    c, band = r.costs, r.latency_band
    return {"source": source, "trial": t.number, "name": r.baseline or "", "arch": r.arch,
            "accuracy": r.test_accuracy, "val_accuracy": r.val_accuracy, "macs": c.macs, "params": c.params,
            "latency_ms": r.latency_ms, "latency_band_lo": band[0] if band else None,
            "latency_band_hi": band[1] if band else None, "latency_kind": r.latency_kind,
            "latency_caveat": r.latency_caveat, "peak_memory_mb": round(c.memory_mb, 6),
            "weight_mb": c.weight_mb, "peak_activation_mb": c.peak_activation_mb, "file_bytes": r.file_bytes,
            "feasible": r.feasible, "dominated_by_front": False,
            "artifact": str(model_dir(r, t.number) / Path(r.artifact or "model.onnx").name),
            "onnx_path": str(model_dir(r, t.number) / "model.onnx") if not r.artifacts or "onnx" in r.artifacts
            else None}


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


def export_trial_files(study: optuna.Study, run_dir: Path, number: int,
                       store: FileSystemArtifactStore | None = None) -> Path:
    """Copy a completed trial's exported files (the kinds its target runs) into its model folder,
    with arch.txt, metrics.json and a README.md; returns the primary file's path."""
    trial = study.trials[number] if 0 <= number < len(study.trials) else None
    result = result_of(trial) if trial is not None else None
    if trial is None or trial.state != COMPLETE or result is None or result.onnx_path is None:
        raise KeyError(f"trial {number} has no exported model; allowed: completed trials "
                       f"{[t.number for t in study.trials if t.state == COMPLETE]}")
    rel = model_dir(result, number)
    target = run_dir / rel
    target.mkdir(parents=True, exist_ok=True)
    # records before the artifact kinds existed hold the ONNX file only
    files = {k: dict(v) for k, v in result.artifacts.items()} or {
        "onnx": {"path": result.onnx_path, "bytes": result.file_bytes, "runtime": "onnxruntime",
                 "test_accuracy": result.test_accuracy, "val_accuracy": result.val_accuracy,
                 "host_latency_ms": result.host_latency_ms}}
    primary = None
    for kind, info in files.items():
        name = Path(str(info["path"])).name
        write_atomic(target / name, trial_file(study, trial, run_dir / str(info["path"]), store))
        if result.artifact in (None, info["path"]) and primary is None:
            primary = target / name
        info["path"] = str(rel / name)
    write_atomic(target / "arch.txt", (result.arch + "\n").encode())
    spec = parse(result.arch)
    card = model_card(result, files, input_shape=(1, spec.in_chs, spec.resolution, spec.resolution),
                      contract=card_contract(target, result.profile),
                      title=f"{study.study_name}, trial {number}")
    write_atomic(target / "README.md", card.encode())
    metrics = {"trial": number, "params": trial.params, **result.to_attrs(), "artifacts": files,
               "objectives": dict(zip(study.metric_names or [], trial.values or [])),
               "onnx_path": str(rel / "model.onnx") if "onnx" in files else None,
               "artifact": str(primary.relative_to(run_dir)) if primary is not None else None}
    write_atomic(target / "metrics.json", (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode())
    assert primary is not None
    return primary


def write_csv(path: Path, table: pd.DataFrame) -> None:
    write_atomic(path, table.to_csv(index=False).encode())


def _profile_tag(*studies: optuna.Study | None) -> str:
    for study in studies:
        for t in study.trials if study else []:
            result = result_of(t)
            if result is not None and result.profile:
                return f"{result.profile}@{result.profile_version}"
    return ""


def drop_stale_models(run_dir: Path, current: set[str]) -> list[str]:
    """Remove the model folders of trials no longer on the front (``models/0003``,
    ``models/baseline-x``), so models/ holds the current front; a folder holding what a user made
    from it (``final*/`` by hwnas train, ``compressed/`` by hwnas compress) or that the user
    exported by hand (:data:`KEEP_MARK`, written by hwnas export) is kept, and so are ``arch-*`` folders. Returns the names removed."""
    removed = []
    for folder in sorted((run_dir / "models").glob("*")):
        name = folder.name
        if not folder.is_dir() or name in current or not (name.isdigit() or name.startswith("baseline-")):
            continue
        if (folder / KEEP_MARK).exists() or any(p.is_dir() and (p.name.startswith("final") or p.name == "compressed")
                                                 for p in folder.iterdir()):
            continue
        shutil.rmtree(folder, ignore_errors=True)  # another worker may be removing it too
        removed.append(name)
    if removed:
        log.info("models no longer on the front removed: %s", ", ".join(removed))
    return removed


def write_outputs(run_dir: Path, *, budgets: dict[str, float | None], search: optuna.Study | None,
                  baselines: optuna.Study | None = None, store: FileSystemArtifactStore | None = None) -> pd.DataFrame:
    """trials.csv, baselines.csv, front.csv, front.png (with the finals of finals.csv when
    ``hwnas train`` wrote one) and models/ for every front trial and trained baseline. Either study may be absent (a run with baselines only, or no baselines)."""
    trials = trials_table(search)
    write_csv(run_dir / "trials.csv", trials)
    base_trials = trials_table(baselines) if baselines else None
    if base_trials is not None:
        write_csv(run_dir / "baselines.csv", base_trials)
    front = front_table(search, baselines)
    write_csv(run_dir / "front.csv", front)
    current = set()
    for row in front.itertuples():
        study = search if row.source == "search" else baselines
        assert study is not None  # the row came from it
        current.add(export_trial_files(study, run_dir, int(str(row.trial)), store).parent.name)
    drop_stale_models(run_dir, current)
    title = search.study_name if search else baselines.study_name if baselines else run_dir.name
    finals = pd.read_csv(run_dir / "finals.csv") if (run_dir / "finals.csv").exists() else None
    plot_front(trials, front, budgets=budgets, path=run_dir / "front.png", title=title, baseline_trials=base_trials,
               profile=_profile_tag(search, baselines), finals=finals)
    return front
