"""The tables of a run, computed from stored records alone (no training): trials, the front,
baselines marked as dominated, and the files a front trial exports."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from nas.search.report import KEEP_MARK, drop_stale_models, export_trial_files, front_table, trials_table, write_outputs
from tests.nas.search.test_record import FULL


def _study(name: str, rows: list[tuple[float, float, int, bool]], *, baseline: bool = False) -> optuna.Study:
    """A study of complete trials with (val accuracy, latency, MACs, feasible) records."""
    study = optuna.create_study(study_name=name, directions=["maximize", "minimize", "minimize"])
    for i, (acc, ms, macs, feasible) in enumerate(rows):
        assert FULL.costs is not None
        record = replace(FULL, val_accuracy=acc, test_accuracy=acc - 0.01, latency_ms=ms, feasible=feasible,
                         costs=replace(FULL.costs, macs=macs), baseline=f"b{i}" if baseline else None,
                         onnx_path=f"trials/{i:04d}/model.onnx")
        trial = optuna.trial.create_trial(values=[acc, ms, macs], user_attrs=record.to_attrs(),
                                          system_attrs={"constraints": [0.0 if feasible else 1.0]})
        study.add_trial(trial)
    return study


def test_front_is_the_feasible_pareto_set_best_first() -> None:
    study = _study("s", [(0.8, 1.0, 100, True), (0.9, 2.0, 200, True), (0.7, 3.0, 300, True),
                         (0.95, 0.5, 50, False)])
    front = front_table(study)
    assert list(front["trial"]) == [1, 0]  # trial 2 is dominated; trial 3 is over budget
    assert list(front["accuracy"]) == pytest.approx([0.89, 0.79]) and set(front["source"]) == {"search"}
    trials = trials_table(study)
    assert list(trials["trial"]) == [0, 1, 2, 3] and set(trials["state"]) == {"COMPLETE"}
    assert {"accuracy", "params", "latency_ms_pred_raspberry-pi4", "latency_ms_meas_cpu"} <= set(trials.columns)


def test_baselines_are_marked_when_the_front_dominates_them() -> None:
    search = _study("s", [(0.9, 1.0, 100, True)])
    baselines = _study("s-baselines", [(0.8, 2.0, 200, True), (0.95, 3.0, 300, True)], baseline=True)
    front = front_table(search, baselines)
    assert list(front["source"]) == ["search", "baseline", "baseline"]
    assert list(front["name"]) == ["", "b1", "b0"]
    assert list(front["dominated_by_front"]) == [False, False, True]


def test_front_trials_are_exported_with_arch_and_metrics(tmp_path: Path) -> None:
    study = _study("s", [(0.8, 1.0, 100, True), (0.9, 2.0, 200, True)])
    for i in range(2):
        (tmp_path / "trials" / f"{i:04d}").mkdir(parents=True)
        (tmp_path / "trials" / f"{i:04d}" / "model.onnx").write_bytes(b"onnx")
    front = write_outputs(tmp_path, budgets={"macs": 250}, search=study)
    assert len(front) == 2 and (tmp_path / "front.png").stat().st_size > 0
    for name in ("trials.csv", "front.csv"):
        assert (tmp_path / name).is_file()
    metrics = json.loads((tmp_path / "models" / "0001" / "metrics.json").read_text())
    assert metrics["trial"] == 1 and metrics["arch"] == FULL.arch and metrics["onnx_path"] == "models/0001/model.onnx"
    assert (tmp_path / "models" / "0001" / "arch.txt").read_text().strip() == FULL.arch
    with pytest.raises(KeyError, match="trial 5 has no exported model; allowed: completed trials \\[0, 1\\]"):
        export_trial_files(study, tmp_path, 5)


def test_models_hold_the_current_front_and_what_the_user_made(tmp_path: Path) -> None:
    models = tmp_path / "models"
    for name in ("0000", "0001", "0002", "0003", "baseline-mbv2", "arch-1a2b"):
        (models / name).mkdir(parents=True)
        (models / name / "model.onnx").write_bytes(b"x")
    (models / "0002" / "final").mkdir()  # trained by hwnas train
    (models / "0003" / KEEP_MARK).touch()  # exported by hand
    removed = drop_stale_models(tmp_path, {"0001"})
    assert removed == ["0000", "baseline-mbv2"]
    assert sorted(p.name for p in models.iterdir()) == ["0001", "0002", "0003", "arch-1a2b"]
