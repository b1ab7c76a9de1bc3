"""Handcrafted baselines under the search's own budget: MobileNetV2 width x resolution,
ShuffleNetV1 groups and ShuffleNetV2 widths, adapted to the dataset's input size, trained on the
same data with the same budget and judged by the same evaluation as searched trials.

They live in a sibling study ``<name>-baselines`` of the same storage, so the sampler never
learns from them, and their files under ``baselines/<trial>/``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

from nas.core.config import SearchConfig
from nas.data.splits import Splits
from nas.hardware.profiles import HardwareProfile
from nas.search.artifacts import open_store
from nas.search.evaluate import EvalContext, Trainer
from nas.search.objective import Objective
from nas.search.record import result_of
from nas.search.slots import FINISHED
from nas.search.study import TrialCallback, baselines_study_name, open_study
from nas.search.workers import claim, recover_stale
from nas.space.arch import ArchSpec
from nas.space.zoo import adapt_to_input, mobilenet_v2, shufflenet_v1, shufflenet_v2
from nas.train.trainer import train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Baseline:
    name: str
    family: str
    spec: ArchSpec


def finished_baselines(study: optuna.Study | None) -> set[str]:
    """Names of the baselines finished (trained or rejected) in a baselines study."""
    out = set()
    for t in study.trials if study else []:
        result = result_of(t)
        if t.state in FINISHED and result is not None and result.baseline:
            out.add(result.baseline)
    return out


def baseline_grid(cfg: SearchConfig, *, in_chs: int, classes: int) -> list[Baseline]:
    """The configured grid, each network fitted to the input by :func:`nas.space.zoo.adapt_to_input`."""
    b = cfg.baselines
    resolutions = b.mobilenet_v2_resolutions or cfg.space.resolutions
    native = max(cfg.space.resolutions)
    rows: list[tuple[str, str, ArchSpec, int]] = []
    rows += [(f"mobilenet_v2_{w:g}x_r{r}", "mobilenet_v2", mobilenet_v2(width=w), r)
             for w in b.mobilenet_v2_widths for r in resolutions]
    rows += [(f"shufflenet_v1_{b.shufflenet_v1_width:g}x_g{g}_r{native}", "shufflenet_v1",
              shufflenet_v1(groups=g, width=b.shufflenet_v1_width), native) for g in b.shufflenet_v1_groups]
    rows += [(f"shufflenet_v2_{w:g}x_r{native}", "shufflenet_v2", shufflenet_v2(width=w), native)
             for w in b.shufflenet_v2_widths]
    return [Baseline(name, family, adapt_to_input(spec, resolution=r, in_chs=in_chs, classes=classes,
                                                  min_feature=b.min_feature))
            for name, family, spec, r in rows]


def run_baselines(cfg: SearchConfig, run_dir: Path, *, storage: str, profile: HardwareProfile, splits: Splits,
                  ignore_budgets: bool = False, callbacks: tuple[TrialCallback, ...] = (),
                  on_start: Callable[[int, str], None] | None = None, trainer: Trainer = train) -> optuna.Study:
    """Train and evaluate every baseline not yet finished in the baselines study (resumable)."""
    study = open_study(cfg, storage, name=baselines_study_name(cfg), heartbeat=False)
    recover_stale(study)
    done = finished_baselines(study)
    objective = Objective(EvalContext.for_search(cfg, profile, splits, trainer=trainer), run_dir, on_start=on_start,
                          artifacts="baselines", store=open_store(run_dir, cfg.search.artifact_store))
    for baseline in baseline_grid(cfg, in_chs=splits.preprocess.channels, classes=len(splits.classes)):
        if baseline.name in done:
            continue
        trial = study.ask()
        claim(trial)
        try:
            values = objective.run(trial, baseline.spec, objective.sample_recipe(trial, baseline.spec),
                                   gate=not ignore_budgets, baseline=(baseline.name, baseline.family))
            frozen = study.tell(trial, values)
        except optuna.TrialPruned:
            frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except KeyboardInterrupt:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        except Exception as exc:  # recorded as failed on the trial; the other baselines go on
            log.warning("baseline %s failed: %s", baseline.name, exc)
            frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
        for callback in callbacks:
            callback(study, frozen)
    return study
