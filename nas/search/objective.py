"""The Optuna objective of a search: sample -> evaluate -> record.

The space samples an architecture (and the compression knobs a recipe), :func:`nas.search.evaluate.evaluate`
does the work without Optuna, and :func:`record` writes the result onto the trial: its user
attributes (:meth:`CandidateResult.to_attrs`) and its budget constraints.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore

from compress.lowbit import group_names
from compress.recipe import Recipe, sample_recipe
from nas.search.artifacts import upload_trial_files
from nas.search.evaluate import CandidateFailed, EvalContext, TrialFiles, evaluate
from nas.search.record import CandidateResult
from nas.search.rungs import RungJudge
from nas.search.redraw import redraw_next
from nas.search.slots import TrialSkipped, at_chance, candidate_key, check_duplicate, flag_at_chance, wait_for_slot
from nas.search.workers import claim, heartbeat
from nas.space.arch import ArchSpec
from nas.space.sampler import SearchSpace


def record(trial: optuna.Trial, result: CandidateResult) -> None:
    """Store ``result`` on ``trial``: its attributes and its budget constraints."""
    for key, value in result.to_attrs().items():
        trial.set_user_attr(key, value)
    for key, excess in result.constraints.items():
        trial.set_constraint(key, excess)


@dataclass
class Objective:
    """Callable on an Optuna trial; returns the objective values of the candidate it samples."""

    context: EvalContext
    run_dir: Path
    on_start: Callable[[int, str], None] | None = None
    artifacts: str = "trials"  # folder under run_dir for each trial's files
    total: int | None = None  # trials the study wants: a trial beyond them is skipped (nas.search.slots)
    store: FileSystemArtifactStore | None = None  # every trial's files are uploaded there (nas.search.artifacts)

    def __post_init__(self) -> None:
        splits = self.context.splits
        self.space = SearchSpace(self.context.cfg.space, in_chs=splits.preprocess.channels,
                                 num_classes=len(splits.classes))

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        """The search objective: sample an architecture from the space and evaluate it, unless
        another trial holds the same candidate or the study already has its trials (TrialSkipped).
        The trial carries this worker's identity and heartbeat while it runs."""
        claim(trial)
        with heartbeat(trial):
            spec = self.space.sample(trial)
            recipe = self.sample_recipe(trial, spec)
            try:
                check_duplicate(trial, candidate_key(spec.format(), recipe.to_json() if recipe else None))
            except TrialSkipped:
                redraw_next(trial.study)  # the sampler proposed a candidate already evaluated: draw the next at random
                raise
            if self.total is not None:
                wait_for_slot(trial, self.total)
            return self.run(trial, spec, recipe)

    def sample_recipe(self, trial: optuna.Trial, spec: ArchSpec) -> Recipe | None:
        """The trial's compression knobs, when the search has a compression section."""
        space = self.context.cfg.compression
        return sample_recipe(trial, space, group_names(spec)) if space is not None else None

    def run(self, trial: optuna.Trial, spec: ArchSpec, recipe: Recipe | None, *, gate: bool = True,
            baseline: tuple[str, str] | None = None) -> tuple[float, ...]:
        """Evaluate ``spec`` (a baseline: ``(name, family)``) and record it on ``trial``. Over budget
        raises TrialPruned; a failure is recorded, then re-raised."""
        if self.on_start:
            self.on_start(trial.number, spec.format())
        seed = self.context.cfg.seed * 100_003 + trial.number
        files = TrialFiles(self.run_dir, f"{self.artifacts}/{trial.number:04d}")
        stopping, objectives = self.context.cfg.search.early_stopping, self.context.cfg.search.objectives
        judge = None if stopping is None or baseline else RungJudge(
            trial, stopping, tuple(name for name in objectives if name != "accuracy"))
        try:
            result = evaluate(spec, recipe, self.context, seed=seed, files=files, gate=gate, at_rung=judge)
        except CandidateFailed as failed:
            record(trial, _labelled(failed.record, baseline))
            raise failed.__cause__ or failed from None
        result = _labelled(result, baseline)
        record(trial, result)
        if self.store is not None and files.dir.is_dir():
            upload_trial_files(trial, files.dir, self.store)
        if result.val_accuracy is not None and at_chance(result.val_accuracy, len(self.context.splits.classes)):
            flag_at_chance(trial)
        if result.rejected_before_training:
            raise optuna.TrialPruned(f"over budget before training: {result.infeasible_reason}")
        if result.stopped_at_rung is not None:
            raise optuna.TrialPruned(f"stopped early: {result.stop_reason}")
        return tuple(result.objective(name) for name in self.context.cfg.search.objectives)


def _labelled(result: CandidateResult, baseline: tuple[str, str] | None) -> CandidateResult:
    return replace(result, baseline=baseline[0], family=baseline[1]) if baseline else result
