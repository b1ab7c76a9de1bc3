"""Progress lines: n/N, what the trial did, elapsed, ETA and the best feasible trial so far."""
from __future__ import annotations

from dataclasses import replace

import optuna

from nas.search.progress import Progress
from tests.nas.search.test_record import FULL


def test_lines_count_finished_trials_and_name_the_best() -> None:
    study = optuna.create_study(directions=["maximize"])
    progress = Progress(total=4, already_done=1, started=0.0)
    assert progress.start_line(1, FULL.arch) == f"[  2/4] trial 1 start  {FULL.arch}"
    assert Progress.best(study) == "none feasible yet"
    study.add_trial(optuna.trial.create_trial(value=0.875, user_attrs=FULL.to_attrs()))
    line = progress.line(study, study.trials[0])
    assert line.startswith("[  2/4] trial 0  acc 86.2% (val 87.5%)  lat 0.031 ms  MACs 0.02M  feasible")
    assert "ETA" in line and line.endswith("best trial 0 acc 86.2% @ 0.031 ms")
    rejected = replace(FULL, rejected_before_training=True, feasible=False, infeasible_reason="macs 2e+04 > 1e+04")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs=rejected.to_attrs()))
    assert "[  3/4] trial 1  rejected before training: macs 2e+04 > 1e+04" in progress.line(study, study.trials[1])
    failed = replace(FULL, error="RuntimeError: boom")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=failed.to_attrs()))
    assert "[  3/4] trial 2  FAILED: RuntimeError: boom" in progress.line(study, study.trials[2])  # not counted
