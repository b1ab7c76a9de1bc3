"""Searches on generated data, driven through run_search with an injected trainer: gates, resume,
failures, reproducibility, pricing on every profile, and a predicted target."""
from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest

from nas.cli._run import front_text
from nas.core.config import SearchConfig, parse_search_config
from nas.core.errors import UserError
from nas.deploy.edgetpu import check_edgetpu
from nas.deploy.tflite import available as tflite_available
from nas.hardware.profiles import load_profile
from nas.search.record import result_of
from nas.search.report import write_outputs
from nas.search.run_folder import default_storage
from nas.search.study import check_run_config, open_study, run_search, write_run_config
from tests.conftest import FakeTrainer, never_trains, tiny_config


def _cfg(idx_dir: Path, **search: object) -> SearchConfig:
    return parse_search_config(tiny_config(idx_dir, **search))


def _trials(cfg: SearchConfig, run: Path) -> list[optuna.trial.FrozenTrial]:
    return open_study(cfg, default_storage(run), create=False).trials


def _arch(t: optuna.trial.FrozenTrial) -> str | None:
    r = result_of(t)
    return r.arch if r is not None else None


def test_over_budget_candidates_are_rejected_without_training(tmp_path: Path, idx_dir: Path) -> None:
    cfg = _cfg(idx_dir, budgets={"macs": 1000, "peak_memory_mb": 0.001})
    study = run_search(cfg, tmp_path / "run", trainer=never_trains)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 3
    for t in study.trials:
        result = result_of(t)
        assert result is not None and result.rejected_before_training and not result.feasible
        assert result.costs is not None and result.costs.macs > 1000
        # never_trains fails the test if called; how fast a rejection is, benchmarks/quickstart.py measures
        assert "macs" in (result.infeasible_reason or "") and result.seconds is not None
        assert result.constraints["macs"] == pytest.approx(result.costs.macs / 1000 - 1)
    front = write_outputs(tmp_path / "run", budgets={"macs": 1000}, search=study)
    assert len(front) == 0 and (tmp_path / "run" / "front.png").exists()


def test_latency_budget_is_gated_on_the_measured_export(tmp_path: Path, idx_dir: Path) -> None:
    cfg = _cfg(idx_dir, trials=1, budgets={"latency_ms": 1e-6})
    (t,) = run_search(cfg, tmp_path / "run", trainer=never_trains).trials
    result = result_of(t)
    assert t.state == optuna.trial.TrialState.PRUNED and result is not None
    assert (result.latency_ms or 0) > 0 and result.latency_kind == "measured"
    assert (result.infeasible_reason or "").startswith("latency_ms")


def test_resume_after_interruption_keeps_completed_trials(tmp_path: Path, idx_dir: Path) -> None:
    cfg, run = _cfg(idx_dir), tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, run, trainer=FakeTrainer(fail_on={3: KeyboardInterrupt()}))
    before = [(t.number, t.state, _arch(t), t.values) for t in _trials(cfg, run)]
    assert [s for _, s, _, _ in before] == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.FAIL]
    failed = result_of(_trials(cfg, run)[2])
    assert failed is not None and failed.error == "KeyboardInterrupt" and failed.arch == before[2][2]
    after = run_search(cfg, run, trainer=FakeTrainer()).trials
    assert [(t.number, t.state, _arch(t), t.values) for t in after[:3]] == before
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after) == 3
    assert len(run_search(cfg, run, trainer=never_trains).trials) == len(after)  # nothing left: no new trials


def test_failing_trial_is_recorded_and_search_goes_on(tmp_path: Path, idx_dir: Path) -> None:
    cfg = _cfg(idx_dir, trials=2)
    trainer = FakeTrainer(fail_on={1: FloatingPointError("training diverged at epoch 1 (loss nan)")})
    trials = run_search(cfg, tmp_path / "run", trainer=trainer).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    first = result_of(trials[0])
    assert first is not None and first.error == "FloatingPointError: training diverged at epoch 1 (loss nan)"
    assert first.costs is not None  # what was computed before the failure is kept
    assert [t.state for t in trials[1:]] == [optuna.trial.TrialState.COMPLETE] * 2 and trainer.calls == 3


def test_an_interrupted_candidate_runs_first_on_resume_and_counts_once(tmp_path: Path, idx_dir: Path) -> None:
    cfg = _cfg(idx_dir, trials=2)
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, tmp_path / "run", trainer=FakeTrainer(fail_on={1: KeyboardInterrupt()}))
    resumed = FakeTrainer()
    trials = run_search(cfg, tmp_path / "run", trainer=resumed).trials
    interrupted = result_of(trials[0])
    assert trials[0].state == optuna.trial.TrialState.FAIL and interrupted is not None
    assert (interrupted.error or "").startswith("KeyboardInterrupt")
    rerun = result_of(trials[1])
    assert trials[1].params == trials[0].params and rerun is not None and rerun.arch == interrupted.arch
    assert [t.state for t in trials[1:]] == [optuna.trial.TrialState.COMPLETE] * 2 and resumed.calls == 2
    # enqueued once: a third start does not run it again
    assert len(run_search(cfg, tmp_path / "run", trainer=never_trains).trials) == 3


def test_same_seed_same_architectures(tmp_path: Path, idx_dir: Path) -> None:
    archs = []
    for seed, name in ((0, "a"), (0, "b"), (1, "c")):
        data = tiny_config(idx_dir, trials=3)
        data["seed"] = seed
        study = run_search(parse_search_config(data), tmp_path / name, trainer=FakeTrainer())
        archs.append([r.arch for t in study.trials if (r := result_of(t)) is not None])
    assert archs[0] == archs[1]
    assert archs[0] != archs[2]


def test_every_trial_is_priced_on_predicted_profiles(tmp_path: Path, idx_dir: Path) -> None:
    (t,) = run_search(_cfg(idx_dir, trials=1), tmp_path / "run", trainer=FakeTrainer()).trials
    r = result_of(t)
    assert r is not None and r.latency_kind == "measured" and r.latency_ms == r.host_latency_ms
    pi = r.predicted["raspberry-pi4"]
    assert pi.ms is not None and pi.ms > 0 and pi.precision is None  # it runs the search's fp32
    # the ZC706 is calibrated for 16-bit only: priced at that, and labelled so
    zc706 = r.predicted["zynq-zc706"]
    assert zc706.ms is not None and zc706.ms > 0 and zc706.precision == "fp16"


def test_search_targeting_a_predicted_profile(tmp_path: Path, idx_dir: Path) -> None:
    (t,) = run_search(_cfg(idx_dir, trials=1, profile="raspberry-pi4"), tmp_path / "run", trainer=FakeTrainer()).trials
    r = result_of(t)
    assert r is not None and r.latency_kind == "predicted" and r.latency_ms == r.predicted["raspberry-pi4"].ms
    assert (r.host_latency_ms or 0) > 0 and r.profile == "raspberry-pi4"
    assert r.profile_version == load_profile("raspberry-pi4").version
    assert t.values is not None and t.values[1] == pytest.approx(r.latency_ms, rel=1e-3)  # the objective: the prediction
    # a tiny network lies far below the Pi's calibration networks: the caveat travels to the front
    assert (r.latency_caveat or "").startswith("EXTRAPOLATED")
    front = pd.read_csv(tmp_path / "run" / "front.csv")
    assert front.loc[0, "latency_caveat"] == r.latency_caveat
    assert "EXTRAPOLATED" in front_text(front) and f"{r.latency_ms:.4g}*" in front_text(front)
    # a latency budget on a predicted profile is gated on the prediction, before any training
    gated = _cfg(idx_dir, trials=1, profile="raspberry-pi4", budgets={"latency_ms": 1e-6})
    (t,) = run_search(gated, tmp_path / "gated", trainer=never_trains).trials
    r = result_of(t)
    assert t.state == optuna.trial.TrialState.PRUNED and r is not None and r.latency_kind == "predicted"
    with pytest.raises(UserError, match=r"zynq-zcu102-dpu@\d+ runs int8 only .* set compression.quantize: \[static\]"):
        run_search(_cfg(idx_dir, profile="zynq-zcu102-dpu"), tmp_path / "z", trainer=never_trains)
    assert not (tmp_path / "z").exists()  # nothing written: the fixed config runs in the same folder


@pytest.mark.skipif(not tflite_available(), reason="needs the tflite extra (LiteRT)")
def test_an_edge_tpu_search_prices_its_int8_artifacts(tmp_path: Path, idx_dir: Path) -> None:
    """An int8-only target searches static int8 trials: the budget gates on the int8 prediction
    before training, and the objective is the prediction of the quantized model."""
    raw = tiny_config(idx_dir, trials=3, profile="edgetpu", budgets={"latency_ms": 50.0})
    raw["compression"] = {"quantize": ["static"]}
    study = run_search(parse_search_config(raw), tmp_path / "tpu", trainer=FakeTrainer(real=True))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    for t in done:
        r = result_of(t)
        assert r is not None and r.precision == "int8" and r.profile == "edgetpu" and r.latency_kind == "predicted"
        assert r.latency_ms is not None and r.latency_ms == r.predicted["edgetpu"].ms
        assert r.predicted["edgetpu"].precision is None  # priced at int8, the target's own precision
        assert "Edge TPU runtime" in (r.latency_how or "")
        # the tiny networks of this space lie far below the Edge TPU fit's calibration networks: said so
        assert "EXTRAPOLATED" in (r.latency_how or "") and "EXTRAPOLATED" in (r.predicted["edgetpu"].caveat or "")
        # the profile's artifact: full-integer int8 TFLite, measured by LiteRT, passing the readiness check
        assert list(r.artifacts) == ["tflite-int8"] and r.artifact is not None and r.artifact.endswith(".tflite")
        assert r.artifact_runtime is not None and r.artifact_runtime.startswith("LiteRT")
        # inverted residuals map completely; a ShuffleNet unit may not (its verdict then names why)
        shuffle = "-sh_" in r.arch
        assert r.edgetpu_ready is check_edgetpu(tmp_path / "tpu" / r.artifact).ready
        assert r.edgetpu_ready or (shuffle and "NOT Edge TPU ready" in (r.edgetpu_summary or "")), r.edgetpu_summary
        assert r.test_accuracy == r.artifacts["tflite-int8"]["test_accuracy"]
        assert r.file_bytes == (tmp_path / "tpu" / r.artifact).stat().st_size
        assert r.test_accuracy > 0.3  # trained on learnable patterns: the int8 file is no broken conversion
    write_outputs(tmp_path / "tpu", budgets={"latency_ms": 50.0}, search=study)
    exported = sorted(p.name for p in (tmp_path / "tpu" / "models").glob("*/*") if p.suffix in (".onnx", ".tflite"))
    assert exported and set(exported) == {"model_int8.tflite"}
    card = next((tmp_path / "tpu" / "models").glob("*/README.md")).read_text()
    assert "edgetpu_compiler -s -o . model_int8.tflite" in card
    raw["search"]["budgets"] = {"latency_ms": 1e-6}
    (t,) = run_search(parse_search_config(raw | {"name": "gated"}), tmp_path / "gated", trainer=never_trains).trials[:1]
    assert t.state == optuna.trial.TrialState.PRUNED


def test_a_resumed_run_must_keep_its_config(tmp_path: Path, idx_dir: Path) -> None:
    check_run_config(tmp_path, _cfg(idx_dir))  # nothing written yet: any config passes
    assert not (tmp_path / "config.yaml").exists()
    write_run_config(tmp_path, _cfg(idx_dir))
    check_run_config(tmp_path, _cfg(idx_dir, trials=5))  # only search.trials may change
    with pytest.raises(UserError, match="holds a run of a different config"):
        check_run_config(tmp_path, _cfg(idx_dir, population=6))
