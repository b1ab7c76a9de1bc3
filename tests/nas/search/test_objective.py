"""The Optuna objective: sample -> evaluate -> record, on a real in-memory study."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas.core.config import parse_search_config
from nas.hardware.profiles import load_profile
from nas.search.evaluate import EvalContext, Trainer
from nas.search.objective import Objective
from nas.search.record import result_of
from nas.search.study import load_splits
from tests.conftest import FakeTrainer, never_trains, tiny_config

STARTED: list[int] = []


def _objective(tmp_path: Path, idx_dir: Path, trainer: Trainer, **search: object) -> Objective:
    cfg = parse_search_config(tiny_config(idx_dir, **search))
    splits = load_splits(cfg, cache_dir=tmp_path / "cache")
    STARTED.clear()
    return Objective(EvalContext.for_search(cfg, load_profile("cpu"), splits, trainer=trainer), tmp_path,
                     on_start=lambda n, arch: STARTED.append(n))


def test_a_trial_is_sampled_evaluated_and_recorded(tmp_path: Path, idx_dir: Path) -> None:
    objective = _objective(tmp_path, idx_dir, FakeTrainer())
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.optimize(objective, n_trials=1)
    (t,) = study.trials
    result = result_of(t)
    assert result is not None and t.state == optuna.trial.TrialState.COMPLETE
    assert result.arch.startswith("in_c1_r") and result.seed == 0 * 100_003 + t.number
    assert t.values == pytest.approx([result.val_accuracy, result.latency_ms, result.costs.macs if result.costs else 0],
                                     rel=1e-3, abs=1e-4)  # stored latencies are rounded to 4 decimals
    assert {"resolution", "width", "s0.block", "s1.block"} <= set(t.params)  # the space's stable names
    assert STARTED == [0]
    assert (tmp_path / "trials" / "0000" / "model.onnx").is_file()


def test_over_budget_trials_are_pruned_with_their_constraints(tmp_path: Path, idx_dir: Path) -> None:
    objective = _objective(tmp_path, idx_dir, never_trains, budgets={"macs": 1000})
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.optimize(objective, n_trials=2)
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.PRUNED and t.system_attrs["constraints:macs"] > 0
        result = result_of(t)
        assert result is not None and result.rejected_before_training


def test_a_baseline_is_labelled_and_a_failure_recorded(tmp_path: Path, idx_dir: Path) -> None:
    objective = _objective(tmp_path, idx_dir, FakeTrainer(fail_on={1: RuntimeError("boom")}))
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    trial = study.ask()
    spec = objective.space.sample(optuna.trial.FixedTrial({"resolution": 12, "width": 0.5, "s0.block": "ir",
                                                           "s0.depth": 1, "s0.kernel": 3, "s0.expansion": 1,
                                                           "s1.block": "ir", "s1.depth": 1, "s1.kernel": 3,
                                                           "s1.expansion": 1}))
    with pytest.raises(RuntimeError, match="boom"):
        objective.run(trial, spec, None, baseline=("mine", "mobilenet_v2"))
    frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
    result = result_of(frozen)
    assert result is not None and result.baseline == "mine" and result.family == "mobilenet_v2"
    assert result.error == "RuntimeError: boom" and result.arch == spec.format()
