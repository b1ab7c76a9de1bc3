"""Early stopping across objectives (MO-ASHA): the ranking, a search that stops trials at a rung
(recorded, never exported, never on the front), the config's checks, and three workers on one
journal study stopping nothing on a rung with fewer than ``min_trials``."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from nas.core.config import parse_search_config
from nas.core.errors import UserError
from nas.search.mo_asha import crowding, fronts, keeps, kept, order
from nas.search.record import result_of
from nas.search.report import write_outputs
from nas.search.rungs import COSTS
from nas.search.storage import storage_from_url
from nas.search.study import make_sampler, run_search
from tests.conftest import FakeTrainer, tiny_config

ROOT = Path(__file__).resolve().parents[3]
STOPPING = {"rungs": [1], "eta": 2, "min_trials": 3}


def test_non_dominated_sorting_and_crowding_order_the_rung() -> None:
    # minimised: (-accuracy, macs); 0 and 1 trade off, 2 is dominated by 0, 3 by everyone
    points = [(-0.9, 5.0), (-0.6, 1.0), (-0.8, 6.0), (-0.1, 9.0)]
    assert fronts(points) == [[0, 1], [2], [3]]
    assert crowding(points, [0, 1]) == {0: float("inf"), 1: float("inf")}
    assert order(points) == [0, 1, 2, 3]
    assert [keeps(i, points, eta=2) for i in range(4)] == [True, True, False, False]
    assert [kept(n, 3) for n in (1, 3, 4, 9, 10)] == [1, 1, 2, 3, 4]
    # within one front the middle point (least crowding distance) goes last
    line = [(-0.9, 9.0), (-0.5, 5.0), (-0.1, 1.0), (-0.45, 5.5)]
    assert order(line)[-1] in (1, 3) and order(line)[:2] == [0, 2]


def test_config_refuses_rungs_at_or_after_the_last_epoch(idx_dir: Path) -> None:
    with pytest.raises(UserError, match=r"search.early_stopping.rungs: \(3,\) not allowed"):
        parse_search_config(tiny_config(idx_dir, early_stopping={"rungs": [3]}))
    with pytest.raises(UserError, match="search.early_stopping.eta"):
        parse_search_config(tiny_config(idx_dir, early_stopping={"rungs": [1], "eta": 1}))
    with pytest.raises(UserError, match="search.sampler: 'cmaes' not allowed; allowed: random, nsga2, tpe, gp"):
        parse_search_config(tiny_config(idx_dir, sampler="cmaes"))


def test_a_search_stops_trials_at_the_rung_records_why_and_exports_nothing_of_them(tmp_path: Path,
                                                                                  idx_dir: Path) -> None:
    # two objectives: with a measured latency as a third, 8 points are nearly all mutually non-dominated
    cfg = parse_search_config(tiny_config(idx_dir, trials=8, sampler="random", objectives=["accuracy", "macs"],
                                          early_stopping=STOPPING))
    run = tmp_path / "run"
    study = run_search(cfg, run, trainer=FakeTrainer(real=True))  # trained: untrained ones trip the chance guard
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 8
    stopped = [t for t in study.trials if (r := result_of(t)) is not None and r.stopped_at_rung is not None]
    assert stopped, "eta 2 over 8 trials stops some"
    for t in study.trials:
        r = result_of(t)
        assert r is not None and 1 in r.rung_accuracy and COSTS in t.user_attrs
    for t in stopped:
        r = result_of(t)
        assert r is not None and t.state == TrialState.PRUNED and r.stopped_at_rung == 1
        assert t.number >= 2, "the first two trials had fewer than min_trials at the rung"
        assert re.search(r"of (\d+) trials at the rung", r.stop_reason or "")
        assert not (run / "trials" / f"{t.number:04d}" / "model.onnx").exists() and r.onnx_path is None
    front = write_outputs(run, budgets=dataclasses.asdict(cfg.search.budgets), search=study)
    assert not set(front["trial"]) & {t.number for t in stopped}
    table = pd.read_csv(run / "trials.csv")
    assert set(table.loc[table["stopped_at_rung"] == 1, "trial"]) == {t.number for t in stopped}
    assert "val_accuracy_epoch_1" in table.columns


@pytest.mark.parametrize("sampler", ["random", "nsga2", "tpe", "gp"])
def test_every_sampler_runs_the_conditional_space_under_budgets(sampler: str, tmp_path: Path,
                                                                idx_dir: Path) -> None:
    cfg = parse_search_config(tiny_config(idx_dir, trials=4, sampler=sampler, population=2,
                                          budgets={"macs": 60_000}))
    made = make_sampler(cfg, worker=0)
    assert type(getattr(made, "base", made)).__name__ == {"random": "RandomSampler", "nsga2": "NSGAIISampler",
                                                          "tpe": "TPESampler", "gp": "GPSampler"}[sampler]
    study = run_search(cfg, tmp_path / "run", trainer=FakeTrainer())
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    for t in finished:  # every budget reaches Optuna as a constraint
        assert "macs" in t.constraints


@pytest.mark.slow
def test_three_workers_on_one_journal_study_stop_nothing_below_the_minimum(tmp_path: Path, idx_dir: Path) -> None:
    raw = tiny_config(idx_dir, trials=12, sampler="random", objectives=["accuracy", "macs"],
                      early_stopping={"rungs": [1], "eta": 3, "min_trials": 4})
    raw["train"]["epochs"] = 2
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    storage = f"journal:{tmp_path / 'study.log'}"
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "nas.cli", "search", str(config), "--out", str(run), "--storage",
                           storage, "--workers", "3"], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=storage_from_url(storage, heartbeat=False))
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 12
    holders = {t.system_attrs.get("hwnas_worker", {}).get("pid") for t in finished} - {None}
    stopped = [r for t in finished if (r := result_of(t)) is not None and r.stopped_at_rung is not None]
    assert stopped, "12 trials, eta 3: some are stopped"
    for r in stopped:
        at_rung = int(re.search(r"of (\d+) trials at the rung", r.stop_reason or "").group(1))  # type: ignore[union-attr]
        assert at_rung >= 4, r.stop_reason
    front = pd.read_csv(run / "front.csv")
    stopped_archs = {r.arch for r in stopped}
    assert not set(front["arch"]) & stopped_archs
    assert "stopped early" in done.stdout
    assert len(holders) <= 3
