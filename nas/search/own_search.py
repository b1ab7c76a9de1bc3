"""Hardware-aware compression search for a user's own model: ``hwnas compress MODEL --search``.

An Optuna study over recipes (pruning criterion and MAC share, a ratio per stage of the model's
graph, or pruning to the latency budget itself; quantization scheme) under the device's budgets. Every trial's recipe is applied
(:func:`nas.search.own_compress.compressed_files`) and its deployed file measured on itself:
validation and test accuracy by onnxruntime, size in bytes, latency predicted on the target
profile (measured on this host for a measured profile). Objectives: validation accuracy up,
latency and file size down; budgets are Optuna constraints (``Trial.set_constraint``), so the
sampler learns where they fail; a trial over a budget is measured like any other and recorded
infeasible (``constraints`` > 0). The front is the feasible non-dominated trials.

The study lives in ``OUT/study.db`` (SQLite): a run that stops resumes where it was (a trial
left running by a killed process is marked failed), and optuna-dashboard reads it. Each trial's
files go to ``OUT/trials/<n>/``, written whole before the trial is told.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch

from compress.graph_prune import stages
from compress.recipe import DistillConfig, PruneConfig, QuantizeConfig, Recipe
from nas.core.errors import UserError
from nas.core.files import write_atomic
from nas.data.splits import Splits
from nas.deploy.own_model import OwnModel
from nas.hardware.profiles import HardwareProfile
from nas.search.own_compress import check_data, compressed_files, file_figures
from nas.search.own_record import RecipeTrial, save_study_settings, study_settings

log = logging.getLogger(__name__)

BUDGET_KEYS = ("latency_ms", "peak_memory_mb", "file_mb")
STUDY = "compress"
KEEP_MACS = (0.75, 0.5, 0.35, 0.25)


@dataclass(frozen=True)
class RecipeSpace:
    """What the search varies, and the fixed fine-tuning every pruned trial gets."""

    budgets: tuple[tuple[str, float], ...] = ()
    finetune_iters: int = 300
    criteria: tuple[str, ...] = ("l1", "taylor")
    keep_macs: tuple[float, ...] = KEEP_MACS
    quantize: tuple[str, ...] = ("fp32", "int8-per-channel", "int8-per-tensor")
    calibration_images: int = 256
    stages: tuple[str, ...] = ()  # the model's stages (compress.graph_prune.stages): a ratio for each
    stage_ratios: tuple[float, ...] = (0.0, 0.25, 0.5)

    def budget(self, key: str) -> float | None:
        return dict(self.budgets).get(key)


def parse_budgets(items: list[str] | None) -> tuple[tuple[str, float], ...]:
    """``--budget KEY=VALUE`` items as pairs; one-line errors name what is allowed."""
    out = []
    for item in items or []:
        key, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if key not in BUDGET_KEYS or number <= 0:
            raise UserError(f"--budget {item!r} not allowed; allowed: KEY=NUMBER > 0 with KEY one of "
                            f"{', '.join(BUDGET_KEYS)}")
        out.append((key, number))
    return tuple(out)


def sample_recipe(trial: optuna.Trial, space: RecipeSpace, profile: HardwareProfile) -> Recipe | None:
    """The recipe of one trial (None: the model as it is, to place it on the front)."""
    modes = ["none", "macs"] + (["latency"] if space.budget("latency_ms") else []) + (["stages"] if space.stages else [])
    mode = trial.suggest_categorical("prune", modes)
    prune = None
    if mode != "none":
        criterion = trial.suggest_categorical("criterion", list(space.criteria))
        target: dict[str, Any] = {"target_latency_ms": float(space.budget("latency_ms") or 0)} if mode == "latency" else {}
        if mode == "macs":
            target = {"target_macs": trial.suggest_categorical("keep_macs", list(space.keep_macs))}
        if mode == "stages":
            ratios = {s: trial.suggest_categorical(f"ratio.{s}", list(space.stage_ratios)) for s in space.stages}
            target = {"ratio": 0.0, "stage_ratios": {s: r for s, r in ratios.items() if r}}
        if target.get("ratio") != 0.0 or target.get("stage_ratios"):
            prune = PruneConfig(criterion=criterion, finetune_iters=space.finetune_iters, distill=DistillConfig(),
                                **target)
    calibrated = list(profile.model or ())
    allowed = [q for q in space.quantize if q != "fp32" or not calibrated or "fp32" in calibrated]
    scheme = trial.suggest_categorical("quantize", allowed or ["int8-per-tensor"])
    quantize = None
    if scheme != "fp32":
        dpu = "int8" in calibrated and profile.device is not None and profile.device.fallback == "ops"
        pof2 = {"per_channel": False, "activations": "int8", "scales": "pof2"} if dpu else {}
        quantize = QuantizeConfig(mode="static", calibration_images=space.calibration_images,
                                  **({"per_channel": scheme == "int8-per-channel"} | pof2))  # type: ignore[arg-type]
    return Recipe(prune=prune, quantize=quantize) if prune or quantize else None


def open_compress_study(out: Path, settings: dict[str, Any]) -> optuna.Study:
    """The run's study, created or resumed; refuses a folder holding a search of other settings."""
    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{out / 'study.db'}"
    sampler = optuna.samplers.TPESampler(seed=int(settings["seed"]), multivariate=True, n_startup_trials=4)
    study = optuna.create_study(study_name=STUDY, storage=storage, load_if_exists=True, sampler=sampler,
                                directions=["maximize", "minimize", "minimize"])
    stored = study_settings(study)
    if stored is None:
        save_study_settings(study, settings)
        study.set_metric_names(["val_accuracy", "latency_ms", "file_bytes"])
    elif stored != json.loads(json.dumps(settings)):
        raise UserError(f"{out} holds a compression search of other settings; use another --out")
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # one process per run: a running one was killed
    return study


def _latency(figures: dict[str, Any]) -> tuple[float | None, str]:
    pred = figures["predicted"]
    if pred["latency_kind"] == "measured" or pred["latency_ms"] is None:
        return figures.get("host_latency_ms") or pred["latency_ms"], "measured"
    return pred["latency_ms"], "predicted"


def _evaluate(trial: optuna.Trial, own: OwnModel, splits: Splits, space: RecipeSpace, profile: HardwareProfile,
              out: Path, seed: int) -> tuple[float, float, float]:
    recipe = sample_recipe(trial, space, profile)
    precision = recipe.precision if recipe else "fp32"
    RecipeTrial(recipe=recipe.to_json() if recipe else "none").save(trial)  # kept if the trial fails
    earlier = _same_recipe(trial, recipe.to_json() if recipe else "none")
    if earlier is not None:  # the sampler proposed a recipe already measured: its file and figures, not another hour
        assert earlier.values is not None
        replace(RecipeTrial.of(earlier), same_as=earlier.number).save(trial)
        for key, value in earlier.constraints.items():
            trial.set_constraint(key, value)
        return earlier.values[0], earlier.values[1], earlier.values[2]
    work, files, pruned = compressed_files(own, splits, recipe or Recipe(), profile, seed=seed)
    name = f"model_{precision}.onnx" if precision != "fp32" else "model.onnx"
    # the file's figures carry the profile's price (a measured profile times the file once, here)
    figures = file_figures(files[name], work, splits, profile, precision, threads=1)
    pred = figures["predicted"]
    limits = {"latency_ms": pred["latency_ms"], "peak_memory_mb": pred["peak_memory_mb"],
              "file_mb": len(files[name]) / 1e6}
    constraints = [(limits[k] or 0.0) - v for k, v in space.budgets]
    for (key, _), value in zip(space.budgets, constraints, strict=True):
        trial.set_constraint(key, value)  # > 0: over that budget by this much (Optuna's samplers read it)
    prune = None if pruned is None else {"cost": pruned.cost, "before": pruned.before, "after": pruned.after,
                                         "met": pruned.met, "left_dense": pruned.left_dense}
    folder = out / "trials" / str(trial.number)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / name, files[name])
    latency, kind = _latency(figures)
    RecipeTrial(recipe=recipe.to_json() if recipe else "none", file=str(Path("trials") / str(trial.number) / name),
                figures=figures, latency_kind=kind, feasible=all(c <= 0 for c in constraints), prune=prune).save(trial)
    return figures["val_accuracy"], float(latency or 0.0), float(figures["bytes"])


def _same_recipe(trial: optuna.Trial, recipe_json: str) -> optuna.trial.FrozenTrial | None:
    """The earliest completed trial of the study with this recipe, if any."""
    for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if RecipeTrial.of(other).recipe == recipe_json and other.values is not None:
            return other
    return None


def search_recipes(own: OwnModel, splits: Splits, profile: HardwareProfile, out: Path, *, trials: int,
                   space: RecipeSpace, seed: int = 0, say: Callable[[str], None] = log.info) -> pd.DataFrame:
    """Run (or resume) the search until ``trials`` trials have finished; returns the front."""
    check_data(own, splits)
    if own.module is not None and not space.stages:
        space = replace(space, stages=tuple(stages(own.module, torch.zeros(own.input_shape))))
    settings = {"model": own.name, "input_shape": list(own.input_shape), "profile": profile.tag, "data": splits.name,
                "space": asdict(space), "seed": seed}
    study = open_compress_study(out, settings)
    started, done0 = time.perf_counter(), _finished(study)
    while (done := _finished(study)) < trials:
        trial = study.ask()
        try:
            values = _evaluate(trial, own, splits, space, profile, out, seed + trial.number)
            study.tell(trial, values)
        except UserError as exc:  # a recipe this model cannot take: recorded, the search goes on
            RecipeTrial(recipe=RecipeTrial.of(study.trials[trial.number]).recipe, error=str(exc)).save(trial)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elapsed = time.perf_counter() - started
        eta = elapsed / max(1, done + 1 - done0) * max(0, trials - done - 1)
        say(f"[{done + 1:>3}/{trials}] trial {trial.number} {_summary(study.trials[trial.number])} | elapsed "
            f"{elapsed / 60:.1f} min ETA {eta / 60:.1f} min | best {_best(study)}")
    return write_front(study, out)


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                        optuna.trial.TrialState.FAIL)))


def short_recipe(recipe_json: str) -> str:
    """A recipe in a few words for progress lines (the record keeps the full JSON)."""
    if recipe_json == "none":
        return "as it is (fp32)"
    r = json.loads(recipe_json)
    p, q = r.get("prune"), r.get("quantize")
    words = []
    if p:
        budget = next((f"{k} {v}" for k in ("target_macs", "target_latency_ms", "target_params") if (v := p.get(k))),
                      f"stages {p.get('stage_ratios')}" if p.get("stage_ratios") else f"ratio {p.get('ratio')}")
        words.append(f"prune {p['criterion']} {budget}")
    if q:
        words.append(f"int8 {'per-channel' if q['per_channel'] else 'per-tensor'}"
                     + (" pof2" if q.get("scales") == "pof2" else "") if q["mode"] == "static" else q["mode"])
    return ", ".join(words) or "as it is"


def _summary(t: optuna.trial.FrozenTrial) -> str:
    r = RecipeTrial.of(t)
    if t.state != optuna.trial.TrialState.COMPLETE or t.values is None:
        return f"failed: {r.error or 'see the log'}"
    acc, ms, size = t.values
    return (f"val {100 * acc:.2f}% {ms:.4g} ms ({r.latency_kind}) {size / 1e3:.0f} kB"
            + ("" if r.feasible else " OVER BUDGET") + f"  {short_recipe(r.recipe)}"
            + (f" (same recipe as trial {r.same_as}: its file and figures)" if r.same_as is not None else ""))


def _best(study: optuna.Study) -> str:
    ok = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
          if RecipeTrial.of(t).feasible and t.values]
    if not ok:
        return "none feasible yet"
    top = max(ok, key=lambda t: t.values[0])
    return f"trial {top.number} val {100 * top.values[0]:.2f}% @ {top.values[1]:.4g} ms"


def front_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Feasible non-dominated trials (validation accuracy up, latency and size down)."""
    ok = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
          if RecipeTrial.of(t).feasible and t.values]

    def dominated(t: optuna.trial.FrozenTrial) -> bool:
        a = (-t.values[0], t.values[1], t.values[2])
        return any(all(x <= y for x, y in zip(b, a, strict=True)) and b != a
                   for b in ((-o.values[0], o.values[1], o.values[2]) for o in ok))

    rows = []
    ok = [t for t in ok if RecipeTrial.of(t).same_as is None]  # a repeat shows as the trial it repeats
    for t in sorted((t for t in ok if not dominated(t)), key=lambda t: t.values[1]):
        r = RecipeTrial.of(t)
        f = r.figures
        pred = f["predicted"]
        rows.append({"trial": t.number, "val_accuracy": f["val_accuracy"], "test_accuracy": f["test_accuracy"],
                     "latency_ms": t.values[1], "latency_kind": r.latency_kind,
                     "latency_band_ms": pred.get("latency_band_ms"), "profile": pred["profile"],
                     "precision": pred["precision"], "file_bytes": int(t.values[2]), "macs": pred["macs"],
                     "peak_memory_mb": pred["peak_memory_mb"], "file": r.file,
                     "recipe": r.recipe})
    return rows


def write_front(study: optuna.Study, out: Path) -> pd.DataFrame:
    """front.csv and front.md of the study, each written whole."""
    front = pd.DataFrame(front_rows(study))
    write_atomic(out / "front.csv", front.to_csv(index=False).encode())
    table = front.drop(columns=["recipe"]).to_markdown(index=False) if len(front) else "(no feasible trial yet)"
    write_atomic(out / "front.md", (f"# Compression front\n\n{table}\n\nAccuracy measured on each file by "
                                    "onnxruntime; latency as its latency_kind says (predicted: the profile's "
                                    "per-layer model).\n").encode())
    return front
