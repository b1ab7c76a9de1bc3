"""After a duplicate proposal the next trial is drawn at random, and a model-based search of a
tiny space finishes every trial it was asked for (TPE alone proposed one candidate 50 times in a
row in CI and stopped the workers one trial short)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.core.config import parse_search_config
from nas.search.redraw import RedrawSampler, redraw_next
from nas.search.study import run_search
from tests.conftest import FakeTrainer, tiny_config


class Counting(optuna.samplers.RandomSampler):
    def __init__(self) -> None:
        super().__init__(seed=1)
        self.draws = 0

    def sample_independent(self, *args: Any, **kwargs: Any) -> Any:
        self.draws += 1
        return super().sample_independent(*args, **kwargs)


def test_only_the_trial_after_a_duplicate_is_drawn_by_the_fallback() -> None:
    fallback = Counting()
    study = optuna.create_study(sampler=RedrawSampler(optuna.samplers.TPESampler(seed=0, n_startup_trials=1),
                                                      fallback))
    study.optimize(lambda t: t.suggest_int("x", 0, 3), n_trials=3)
    assert fallback.draws == 0
    redraw_next(study)
    study.optimize(lambda t: t.suggest_int("x", 0, 3), n_trials=2)
    assert fallback.draws == 1 and len(study.trials) == 5


def test_a_tpe_search_of_a_four_candidate_space_finishes_all_four(tmp_path: Path, idx_dir: Path) -> None:
    raw = tiny_config(idx_dir, trials=4, sampler="tpe", population=2)
    raw["space"] |= {"resolutions": [12], "widths": [1.0], "block_types": ["ir"], "kernels": [3, 5],
                     "exp_ratios": [1, 3], "stages": [{"chs": 8, "stride": 1, "depths": [1]}]}
    study = run_search(parse_search_config(raw), tmp_path / "run", trainer=FakeTrainer())
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4 and len({t.user_attrs["arch"] for t in finished}) == 4
