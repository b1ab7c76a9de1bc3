"""End-to-end searches on generated data: outputs, gate, resume, reproducibility, failures."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

import nas.search.evaluate
from nas.cli import main
from nas.data.splits import split
from nas.data.datasets import load_idx_dataset
from nas.deploy.export import onnx_accuracy, read_metadata
from nas.hardware.profiles import load_profile
from nas.search.study import load_run_config, open_study
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def _config_file(tmp_path: Path, idx_dir: Path, **search: object) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(idx_dir, **search)))
    return path


def _study(run_dir: Path) -> optuna.Study:
    return open_study(load_run_config(run_dir), f"sqlite:///{run_dir / 'study.db'}", create=False)


def test_search_writes_every_output(tmp_path: Path, idx_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["search", str(_config_file(tmp_path, idx_dir)), "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "[  3/3]" in printed and "ETA" in printed and f"front: {run / 'front.csv'}" in printed
    for name in ("study.db", "trials.csv", "front.csv", "front.png", "config.yaml"):
        assert (run / name).stat().st_size > 0, name
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 3 and set(trials["state"]) == {"COMPLETE"}
    front = pd.read_csv(run / "front.csv")
    assert {"trial", "arch", "accuracy", "macs", "params", "latency_ms", "peak_memory_mb", "onnx_path"} <= set(front)
    assert len(front) >= 1
    s = split(load_idx_dataset("mnist", idx_dir), val_fraction=0.2, seed=0)
    for row in front.itertuples():
        model_dir = run / "models" / f"{row.trial:04d}"
        assert (model_dir / "arch.txt").read_text().strip() == row.arch
        metrics = json.loads((model_dir / "metrics.json").read_text())
        assert metrics["arch"] == row.arch and metrics["latency_kind"] == "measured"
        meta = read_metadata(run / row.onnx_path)
        assert meta["hwnas.arch"] == row.arch
        resolution = json.loads(meta["hwnas.input_shape"])[-1]
        measured = onnx_accuracy(run / row.onnx_path, s.x_test, s.y_test, preprocess=s.preprocess,
                                 resolution=resolution)
        assert measured == pytest.approx(row.accuracy, abs=1e-4)
    best = _study(run).trials[int(front.loc[0, "trial"])]
    for key in ("arch", "seed", "macs", "parameters", "peak_memory_mb", "latency_ms", "latency_how",
                "val_accuracy", "test_accuracy", "onnx_path", "weights_path", "profile", "profile_version"):
        assert key in best.user_attrs, key
    assert front["accuracy"].max() > 0.3  # generated classes are learnable; chance is 0.1


def test_over_budget_candidates_are_rejected_without_training(tmp_path: Path, idx_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("an over-budget candidate was trained")

    monkeypatch.setattr(nas.search.evaluate, "train", no_training)
    run = tmp_path / "run"
    cfg = _config_file(tmp_path, idx_dir, budgets={"macs": 1000, "peak_memory_mb": 0.001})
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    trials = _study(run).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED] * 3
    for t in trials:
        assert t.user_attrs["rejected_before_training"] and t.user_attrs["macs"] > 1000
        assert "macs" in t.user_attrs["infeasible_reason"] and t.user_attrs["seconds"] < 1.0
        assert t.system_attrs["constraints:macs"] > 0
    assert len(pd.read_csv(run / "front.csv")) == 0 and (run / "front.png").exists()


def test_latency_budget_is_gated_on_the_measured_export(tmp_path: Path, idx_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nas.search.evaluate, "train", lambda *a, **k: pytest.fail("trained despite latency budget"))
    run = tmp_path / "run"
    cfg = _config_file(tmp_path, idx_dir, trials=1, budgets={"latency_ms": 1e-6})
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    (t,) = _study(run).trials
    assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["latency_ms"] > 0
    assert t.user_attrs["infeasible_reason"].startswith("latency_ms")


def test_resume_after_interruption_keeps_completed_trials(tmp_path: Path, idx_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    cfg = _config_file(tmp_path, idx_dir)
    real_train = nas.search.evaluate.train
    calls = {"n": 0}

    def interrupt_third(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(nas.search.evaluate, "train", interrupt_third)
    assert main(["search", str(cfg), "--out", str(run)]) == 130
    before = [(t.number, t.state, t.user_attrs.get("arch"), t.values) for t in _study(run).trials]
    assert [s for _, s, _, _ in before] == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.FAIL]
    monkeypatch.setattr(nas.search.evaluate, "train", real_train)
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    after = _study(run).trials
    assert [(t.number, t.state, t.user_attrs.get("arch"), t.values) for t in after[:3]] == before
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after) == 3
    assert main(["search", str(cfg), "--out", str(run)]) == 0  # nothing left: no new trials
    assert len(_study(run).trials) == len(after)


def test_failing_trial_is_recorded_and_search_goes_on(tmp_path: Path, idx_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_train = nas.search.evaluate.train
    calls = {"n": 0}

    def fail_first(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise FloatingPointError("training diverged at epoch 1 (loss nan)")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(nas.search.evaluate, "train", fail_first)
    run = tmp_path / "run"
    assert main(["search", str(_config_file(tmp_path, idx_dir, trials=2)), "--out", str(run)]) == 0
    trials = _study(run).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert trials[0].user_attrs["error"] == "FloatingPointError: training diverged at epoch 1 (loss nan)"
    assert [t.state for t in trials[1:]] == [optuna.trial.TrialState.COMPLETE] * 2
    assert "FAIL" in set(pd.read_csv(run / "trials.csv")["state"])


def test_same_seed_same_architectures(tmp_path: Path, idx_dir: Path) -> None:
    archs = []
    for seed, name in ((0, "a"), (0, "b"), (1, "c")):
        data = tiny_config(idx_dir, trials=3)
        data["seed"] = seed
        data["train"]["epochs"] = 1
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        assert main(["search", str(path), "--out", str(tmp_path / name)]) == 0
        archs.append([t.user_attrs["arch"] for t in _study(tmp_path / name).trials])
    assert archs[0] == archs[1]
    assert archs[0] != archs[2]


def test_journal_storage_runs_and_resumes(tmp_path: Path, idx_dir: Path) -> None:
    run = tmp_path / "run"
    journal = f"journal:{tmp_path / 'study.log'}"
    cfg = _config_file(tmp_path, idx_dir, trials=1)
    assert main(["search", str(cfg), "--out", str(run), "--storage", journal]) == 0
    assert (run / "storage.url").read_text().strip() == journal and (tmp_path / "study.log").stat().st_size > 0
    assert main(["search", str(cfg), "--out", str(run), "--trials", "2"]) == 0  # storage.url is remembered
    assert len(pd.read_csv(run / "trials.csv")) == 2
    assert main(["front", str(run)]) == 0


def test_every_trial_is_priced_on_predicted_profiles(tmp_path: Path, idx_dir: Path) -> None:
    run = tmp_path / "run"
    assert main(["search", str(_config_file(tmp_path, idx_dir, trials=1)), "--out", str(run)]) == 0
    (t,) = _study(run).trials
    assert t.user_attrs["latency_kind"] == "measured" and t.user_attrs["latency_ms"] == t.user_attrs["latency_ms_meas_cpu"]
    assert t.user_attrs["latency_ms_pred_raspberry-pi4"] > 0
    assert "latency_ms_pred_raspberry-pi4" in pd.read_csv(run / "trials.csv")
    assert "latency_ms_pred_raspberry-pi4_precision" not in t.user_attrs  # it runs the search's fp32
    # the ZC706 is calibrated for 16-bit only: priced at that, and labelled so
    assert t.user_attrs["latency_ms_pred_zynq-zc706"] > 0
    assert t.user_attrs["latency_ms_pred_zynq-zc706_precision"] == "fp16"


def test_search_targeting_a_predicted_profile(tmp_path: Path, idx_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["search", str(_config_file(tmp_path, idx_dir, trials=1, profile="raspberry-pi4")),
                 "--out", str(run)]) == 0
    (t,) = _study(run).trials
    a = t.user_attrs
    assert a["latency_kind"] == "predicted" and a["latency_ms"] == a["latency_ms_pred_raspberry-pi4"]
    assert a["latency_ms_meas_cpu"] > 0 and a["profile"] == "raspberry-pi4"
    assert a["profile_version"] == load_profile("raspberry-pi4").version
    assert t.values[1] == pytest.approx(a["latency_ms"], rel=1e-3)  # the latency objective is the predicted one
    # a latency budget on a predicted profile is gated on the prediction, before any training
    monkeypatch.setattr(nas.search.evaluate, "train", lambda *a, **k: pytest.fail("trained despite predicted latency budget"))
    cfg = _config_file(tmp_path, idx_dir, trials=1, profile="raspberry-pi4", budgets={"latency_ms": 1e-6})
    assert main(["search", str(cfg), "--out", str(tmp_path / "gated")]) == 0
    (t,) = _study(tmp_path / "gated").trials
    assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["latency_kind"] == "predicted"
    capsys.readouterr()
    assert main(["search", str(_config_file(tmp_path, idx_dir, profile="zynq-zcu102-dpu")), "--out",
                 str(tmp_path / "z")]) == 2
    assert f"zynq-zcu102-dpu@{load_profile('zynq-zcu102-dpu').version} cannot run fp32" in capsys.readouterr().err
