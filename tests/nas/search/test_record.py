"""The trial record: every figure typed, spelled once as Optuna attributes, read back from this
version's and the first version's studies."""
from __future__ import annotations

import dataclasses

import optuna
import pytest

from nas.core.errors import UserError
from nas.cost.costs import ModelCosts
from nas.hardware.pricing import PredictedLatency
from nas.search.record import RECORD_VERSION, TABLE_COLUMNS, CandidateResult, result_of

ARCH = "in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"
COSTS = ModelCosts(macs=21536, params=700, weight_mb=0.0016, peak_activation_mb=0.0012, precision="fp32")
FULL = CandidateResult(
    arch=ARCH, seed=7, profile="cpu", profile_version="2", precision="fp32", recipe="none", costs=COSTS,
    predicted={"raspberry-pi4": PredictedLatency(ms=1.25, caveat="EXTRAPOLATED: tiny", band_ms=(1.0, 1.5)), "zynq-zc706": PredictedLatency(ms=3.5, precision="fp16"),
               "edgetpu": PredictedLatency(ms=None, error="not calibrated yet")},
    latency_ms=0.0312, latency_kind="measured", latency_how="measured on this host", host_latency_ms=0.0312,
    host_latency_p90_ms=0.04, val_accuracy=0.875, test_accuracy=0.8625, onnx_path="trials/0007/model.onnx",
    weights_path="trials/0007/weights.pt", file_bytes=4096, feasible=True, rejected_before_training=False,
    train_loss=(1.5, 0.75), train_seconds=1.5, seconds=2.25)


def test_attributes_round_trip() -> None:
    attrs = FULL.to_attrs()
    assert attrs["record_version"] == RECORD_VERSION
    assert attrs["latency_ms_pred_raspberry-pi4"] == 1.25 and "latency_ms_pred_raspberry-pi4_precision" not in attrs
    assert attrs["latency_ms_pred_zynq-zc706_precision"] == "fp16"
    assert attrs["latency_ms_pred_raspberry-pi4_caveat"] == "EXTRAPOLATED: tiny"
    assert attrs["latency_ms_pred_raspberry-pi4_band"] == [1.0, 1.5]
    assert attrs["latency_ms_pred_edgetpu_error"] == "not calibrated yet" and "latency_ms_pred_edgetpu" not in attrs
    assert attrs["peak_memory_mb"] == pytest.approx(0.0028) and attrs["latency_ms_meas_cpu"] == 0.0312
    assert CandidateResult.from_attrs(attrs) == FULL


def test_a_first_version_study_still_loads_and_a_newer_one_is_refused() -> None:
    v1 = {k: v for k, v in FULL.to_attrs().items() if k != "record_version"}  # what hwnas wrote before the record
    assert CandidateResult.from_attrs(v1) == FULL
    with pytest.raises(UserError, match=r"newer hwnas \(record version 99; this one reads up to 2\): upgrade"):
        CandidateResult.from_attrs({**v1, "record_version": 99})
    with pytest.raises(UserError, match="no arch attribute"):
        CandidateResult.from_attrs({"seed": 1})


def test_objectives_and_table_row() -> None:
    assert [FULL.objective(n) for n in ("accuracy", "latency_ms", "macs", "parameters")] == [0.875, 0.0312, 21536, 700]
    assert FULL.objective("peak_memory_mb") == pytest.approx(0.0028)
    with pytest.raises(ValueError, match="objective accuracy: the record has no value"):
        CandidateResult(arch=ARCH, seed=0, profile="cpu", profile_version="2", precision="fp32").objective("accuracy")
    row = FULL.table_row()
    assert list(row)[:len(TABLE_COLUMNS)] == list(TABLE_COLUMNS)
    assert row["latency_ms_pred_zynq-zc706"] == 3.5 and row["latency_ms_meas_cpu"] == 0.0312
    assert row["latency_ms_pred_raspberry-pi4_band_lo"] == 1.0 and row["latency_ms_pred_raspberry-pi4_band_hi"] == 1.5


def test_result_of_reads_a_stored_trial_with_its_constraints() -> None:
    study = optuna.create_study(directions=["maximize"])
    trial = study.ask()
    for key, value in FULL.to_attrs().items():
        trial.set_user_attr(key, value)
    trial.set_constraint("macs", 0.5)
    frozen = study.tell(trial, 0.875)
    result = result_of(frozen)
    assert result is not None and result.constraints == {"macs": 0.5} and result.arch == ARCH
    assert result_of(study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)) is None  # failed before sampling


def test_a_record_still_being_written_reads_as_none_while_its_trial_runs() -> None:
    """Storages take attributes one by one: a worker finishing may read another's half-written record."""
    study = optuna.create_study(directions=["maximize"])
    trial = study.ask()
    attrs = FULL.to_attrs()
    for key in ("arch", "macs"):  # the costs' first key written, the others not yet
        trial.set_user_attr(key, attrs[key])
    (running,) = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert result_of(running) is None
    with pytest.raises(KeyError):  # a finished trial's record is whole: a missing key is an error
        result_of(study.tell(trial, 0.5))


def test_a_predicted_target_has_its_band_and_a_measured_one_none() -> None:
    predicted = dataclasses.replace(FULL, profile="raspberry-pi4", latency_kind="predicted", latency_ms=1.25)
    assert predicted.latency_band == (1.0, 1.5) and FULL.latency_band is None  # measured: no band
