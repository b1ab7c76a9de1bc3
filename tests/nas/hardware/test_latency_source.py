"""The latency source is chosen once per search: measured on this host, or predicted by the target."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from nas.core.errors import UserError
from nas.deploy.host_latency import LatencyMeasurement
from nas.hardware.latency_source import MeasuredOnHost, PredictedByProfile, latency_source
from nas.hardware.pricing import PredictedLatency
from nas.hardware.profiles import HardwareProfile, load_profile, profile_path

HOST = LatencyMeasurement(median_ms=0.5, p90_ms=0.6, threads=1, repeats=10, warmup=2, runtime="onnxruntime x")


def test_a_measured_profile_measures_the_file_and_times_untrained_exports_only_for_budgets() -> None:
    source = latency_source(load_profile("cpu"))
    assert isinstance(source, MeasuredOnHost) and source.kind == "measured" and source.host.name == "cpu"
    assert source.before_training({}, None) is None
    assert source.before_training({}, lambda: 0.25) == 0.25
    assert source.of_artifact({"raspberry-pi4": PredictedLatency(ms=9.0)}, HOST) == 0.5
    assert source.how(HOST) == HOST.describe()


def test_a_predicted_profile_takes_its_own_prediction_and_names_why_it_has_none() -> None:
    pi = load_profile("raspberry-pi4")
    source = latency_source(pi)
    assert isinstance(source, PredictedByProfile) and source.kind == "predicted" and source.host.name == "cpu"
    predicted = {"raspberry-pi4": PredictedLatency(ms=9.0), "jetson-nano": PredictedLatency(ms=2.0)}
    assert source.before_training(predicted, lambda: pytest.fail("a predicted source measures nothing")) == 9.0
    assert source.of_artifact(predicted, HOST) == 9.0 and pi.tag in source.how(HOST)
    with pytest.raises(UserError, match="cannot price op kind\\(s\\) shuffle"):
        source.of_artifact({"raspberry-pi4": PredictedLatency(ms=None, error="cannot price op kind(s) shuffle")}, HOST)


def test_a_profile_that_cannot_predict_the_search_precision_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot run fp32; allowed: int8"):
        latency_source(load_profile("zynq-zcu102-dpu"))
    raw = yaml.safe_load(profile_path("edgetpu").read_text())
    del raw["model"]
    (tmp_path / "uncalibrated.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match="is not calibrated yet"):
        latency_source(load_profile(tmp_path / "uncalibrated.yaml"), precision="int8")


def _with_ratios(name: str, precision: str, ratios: tuple[float, ...]) -> HardwareProfile:
    profile = load_profile(name)
    assert profile.model is not None
    model = dataclasses.replace(profile.model[precision], held_out_ratios=ratios)
    return dataclasses.replace(profile, model={**profile.model, precision: model})


def test_budgets_may_hold_a_quantile_of_the_held_out_error() -> None:
    pi = _with_ratios("raspberry-pi4", "fp32", tuple(0.8 + 0.04 * i for i in range(11)))
    assert latency_source(pi).budget_ratio == 1.0  # the point prediction by default
    assert latency_source(pi, budget_quantile=0.9).budget_ratio == pytest.approx(1.16)
    assert latency_source(load_profile("cpu"), budget_quantile=0.9).budget_ratio == 1.0  # measured: no model error
    bare = _with_ratios("raspberry-pi4", "fp32", ())
    with pytest.raises(UserError, match="search.budget_quantile 0.9 needs a held-out error"):
        latency_source(bare, budget_quantile=0.9)
