"""One candidate evaluated without Optuna, with a fake trainer and host measurer injected: the
record it returns, the gate, compression, and what a failure keeps."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from compress.recipe import parse_recipe
from nas.core.config import SearchConfig, parse_search_config
from nas.data.splits import Splits
from nas.deploy.artifacts import kinds
from nas.deploy.export import read_metadata
from nas.deploy.host_latency import LatencyMeasurement
from nas.hardware.profiles import HardwareProfile, load_profile
from nas.search.evaluate import CandidateFailed, EvalContext, Trainer, TrialFiles, evaluate
from nas.search.study import load_splits
from nas.space.arch import ArchSpec, parse
from tests.conftest import FakeTrainer, never_trains, tiny_config

ARCH = "in_c1_r16-stem_k3_s2_c8-ir_r1_k3_s1_e3_c16-head_c32-fc_c10"


class FixedMeasurer:
    """Times nothing: every file takes ``ms`` on the host; counts the calls."""

    def __init__(self, ms: float = 0.125) -> None:
        self.ms, self.calls = ms, 0

    def __call__(self, onnx_bytes: bytes, spec: ArchSpec, host: HardwareProfile) -> LatencyMeasurement:
        self.calls += 1
        assert onnx_bytes and host.kind == "measured"
        return LatencyMeasurement(self.ms, self.ms * 1.5, host.latency.threads if host.latency else 1, 5, 1, "fake")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path) -> tuple[SearchConfig, Splits]:
    cfg = parse_search_config(tiny_config(idx_dir))
    return cfg, load_splits(cfg, cache_dir=tmp_path_factory.mktemp("cache"))


def _context(setup: tuple[SearchConfig, Splits], *, profile: str = "cpu", trainer: Trainer | None = None,
             measure: FixedMeasurer | None = None, **budgets: float) -> EvalContext:
    cfg, splits = setup
    cfg = replace(cfg, search=replace(cfg.search, budgets=replace(cfg.search.budgets, **budgets)))
    return EvalContext.for_search(cfg, load_profile(profile), splits, trainer=trainer or FakeTrainer(),
                                  measure=measure or FixedMeasurer())


def test_a_candidate_reports_the_exported_file(setup: tuple[SearchConfig, Splits], tmp_path: Path) -> None:
    trainer, measure = FakeTrainer(), FixedMeasurer(0.125)
    result = evaluate(parse(ARCH), None, _context(setup, trainer=trainer, measure=measure), seed=3,
                      files=TrialFiles(tmp_path, "trials/0003"))
    assert trainer.calls == 1 and measure.calls == 1
    assert result.arch == ARCH and result.seed == 3 and result.profile == "cpu" and result.recipe is None
    assert result.latency_ms == result.host_latency_ms == 0.125 and result.latency_kind == "measured"
    assert result.feasible and not result.rejected_before_training and result.constraints == {}
    assert 0 <= (result.val_accuracy or 0) <= 1 and result.test_accuracy is not None
    assert result.onnx_path == "trials/0003/model.onnx" and (tmp_path / "trials/0003/weights.pt").is_file()
    assert read_metadata(tmp_path / result.onnx_path)["hwnas.arch"] == ARCH
    assert result.costs is not None and result.costs.macs > 0
    assert {"raspberry-pi4", "jetson-nano", "zynq-zc706"} <= set(result.predicted)


def test_over_budget_is_rejected_before_training(setup: tuple[SearchConfig, Splits], tmp_path: Path) -> None:
    measure = FixedMeasurer(2.0)
    result = evaluate(parse(ARCH), None, _context(setup, trainer=never_trains, measure=measure, latency_ms=1.0),
                      seed=0, files=TrialFiles(tmp_path, "t"))
    assert result.rejected_before_training and not result.feasible and measure.calls == 1  # the untrained export
    assert result.constraints == {"latency_ms": pytest.approx(1.0)}  # 2 ms on a 1 ms budget: 100% over
    assert result.infeasible_reason == "latency_ms 2 > 1" and not (tmp_path / "t").exists()
    ungated = evaluate(parse(ARCH), None, _context(setup, measure=FixedMeasurer(2.0), latency_ms=1.0), seed=0,
                       files=TrialFiles(tmp_path, "u"), gate=False)
    assert not ungated.rejected_before_training and not ungated.feasible  # trained, recorded as infeasible
    assert ungated.infeasible_reason == "latency_ms 2 > 1"


def test_a_predicted_target_prices_the_compressed_file(setup: tuple[SearchConfig, Splits], tmp_path: Path) -> None:
    recipe = parse_recipe({"prune": {"criterion": "l1", "ratio": 0.5, "finetune_iters": 0}})
    result = evaluate(parse(ARCH), recipe, _context(setup, profile="raspberry-pi4"), seed=0,
                      files=TrialFiles(tmp_path, "p"))
    assert result.latency_kind == "predicted" and result.latency_ms == result.predicted["raspberry-pi4"].ms
    # half the block's 24 hidden channels and of the head's 32, rounded up to 8
    assert result.pruned_channels == {"blocks.0": [24, 16], "head": [32, 16]} and result.recipe == recipe.to_json()
    dense = evaluate(parse(ARCH), None, _context(setup, profile="raspberry-pi4"), seed=0,
                     files=TrialFiles(tmp_path, "d"))
    assert dense.costs is not None and result.costs is not None and result.costs.macs < dense.costs.macs
    assert (result.latency_ms or 0) < (dense.latency_ms or 0)


def test_a_failure_keeps_what_was_computed(setup: tuple[SearchConfig, Splits], tmp_path: Path) -> None:
    trainer = FakeTrainer(fail_on={1: FloatingPointError("training diverged")})
    with pytest.raises(CandidateFailed) as info:
        evaluate(parse(ARCH), None, _context(setup, trainer=trainer), seed=0, files=TrialFiles(tmp_path, "f"))
    record = info.value.record
    assert record.error == "FloatingPointError: training diverged" and record.costs is not None
    assert isinstance(info.value.__cause__, FloatingPointError)


def test_a_tflite_file_the_converter_cannot_make_costs_that_file_only(setup: tuple[SearchConfig, Splits],
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("Constant buffer 2 specified an out of range offset.\nmore detail")

    monkeypatch.setattr("nas.search.evaluate.tflite_file", broken)
    context = replace(_context(setup), artifacts=kinds(("onnx", "tflite-fp32")))
    result = evaluate(parse(ARCH), None, context, seed=0, files=TrialFiles(tmp_path, "trials/0000"))
    assert result.export_errors == ("model_fp32.tflite not written: ValueError: Constant buffer 2 specified an out of "
                                    "range offset.")
    assert (tmp_path / "trials/0000/model.onnx").is_file() and not (tmp_path / "trials/0000/model_fp32.tflite").exists()
    assert set(result.artifacts) == {"onnx"} and result.val_accuracy is not None
    # when the failing file is the one the trial reports, the trial fails (recorded, the search goes on)
    context = replace(context, artifacts=kinds(("tflite-fp32", "onnx")))
    with pytest.raises(CandidateFailed) as failed:
        evaluate(parse(ARCH), None, context, seed=0, files=TrialFiles(tmp_path, "trials/0001"))
    assert "Constant buffer 2" in (failed.value.record.error or "")
