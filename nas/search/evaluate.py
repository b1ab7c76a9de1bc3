"""One trial: sample -> price -> gate on budgets -> train -> export -> measure the exported file.

Everything needed to rebuild and judge the trial goes into its user attrs (see README, "Trial
attributes"). The builder never sees Optuna and the space never builds modules: this module wires
them together.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import torch

from nas.space.arch import ArchSpec
from nas.space.builder import build
from nas.core.config import OBJECTIVES, Budgets, SearchConfig
from nas.cost.costs import ModelCosts, count_costs
from nas.data.splits import Splits
from nas.core.errors import UserError
from nas.deploy.export import DeployInfo, onnx_accuracy, to_onnx
from nas.deploy.host_latency import LatencyMeasurement
from nas.hardware.latency_model import predict
from nas.cost.layers import layer_table
from nas.hardware.pricing import measure_on_host
from nas.hardware.profiles import HardwareProfile, calibrated_predicted_profiles, load_profile
from nas.space.sampler import SearchSpace
from nas.train.trainer import train

log = logging.getLogger(__name__)


def budget_violations(metrics: dict[str, float], budgets: Budgets) -> dict[str, float]:
    """Relative excess over each budget that applies: ``value / budget - 1`` (<= 0 is feasible)."""
    out = {}
    for key, limit in (("latency_ms", budgets.latency_ms), ("peak_memory_mb", budgets.peak_memory_mb),
                       ("macs", budgets.macs)):
        if limit is not None and key in metrics:
            out[key] = metrics[key] / limit - 1.0
    return out


def describe_violations(violations: dict[str, float], metrics: dict[str, float], budgets: Budgets) -> str:
    over = [f"{k} {metrics[k]:.4g} > {getattr(budgets, k):.4g}" for k, v in violations.items() if v > 0]
    return "; ".join(over)


def cost_attrs(costs: ModelCosts) -> dict[str, float | int]:
    return {"macs": costs.macs, "parameters": costs.params, "weight_mb": round(costs.weight_mb, 6),
            "peak_activation_mb": round(costs.peak_activation_mb, 6), "peak_memory_mb": round(costs.memory_mb, 6)}


if TYPE_CHECKING:  # compress imports nas; at run time it is imported where used
    from compress.recipe import Recipe


@dataclass
class TrialRunner:
    """The Optuna objective of a search. Callable on a trial; returns the objective values."""

    cfg: SearchConfig
    profile: HardwareProfile
    splits: Splits
    run_dir: Path
    on_start: Callable[[int, str], None] | None = None
    artifacts: str = "trials"  # folder under run_dir for each trial's files

    def __post_init__(self) -> None:
        self.space = SearchSpace(self.cfg.space, in_chs=self.splits.preprocess.channels,
                                 num_classes=len(self.splits.classes))
        if self.profile.kind == "predicted":
            self.profile.check_can_predict(self.cfg.search.precision)
        # The exported file is always timed on this host too, under the host profile's conditions.
        self.host = self.profile if self.profile.kind == "measured" else load_profile("cpu")
        # Every trial is also priced on each calibrated predicted profile, to view one study per device.
        self.predicted = [p for p in calibrated_predicted_profiles() if p.name != self.profile.name]
        if self.profile.kind == "predicted":
            self.predicted.insert(0, self.profile)
        # Distilled training: the teacher's logits for every training image, once per search.
        self.teacher_logits = None
        if self.cfg.train.distill is not None:
            from nas.train.teacher import teacher_logits

            self.teacher_logits = teacher_logits(self.cfg.train.distill, self.splits)

    def trial_dir(self, number: int) -> Path:
        return self.run_dir / self.artifacts / f"{number:04d}"

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        """The search objective: sample an architecture from the space and evaluate it."""
        return self.evaluate(trial, lambda: self.space.sample(trial))

    def evaluate(self, trial: optuna.Trial, make_spec: Callable[[], ArchSpec], *, gate: bool = True) -> tuple[float, ...]:
        """Price, gate (unless ``gate`` is False: over-budget is then recorded, not rejected),
        train, export and measure one architecture. Errors are recorded on the trial and re-raised."""
        try:
            return self._run(trial, make_spec(), gate=gate)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:1000])
            raise

    def _measure(self, onnx_bytes: bytes, spec: ArchSpec) -> LatencyMeasurement:
        return measure_on_host(spec, self.host, onnx_bytes)

    def _run(self, trial: optuna.Trial, spec: ArchSpec, *, gate: bool) -> tuple[float, ...]:
        started = time.perf_counter()
        seed = self.cfg.seed * 100_003 + trial.number
        info = DeployInfo.for_arch(spec, self.splits.preprocess, self.splits.classes)
        trial.set_user_attr("arch", spec.format())
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("profile", self.profile.name)
        trial.set_user_attr("profile_version", self.profile.version)
        trial.set_user_attr("precision", self.cfg.search.precision)
        recipe = None
        if self.cfg.compression is not None:
            from compress.lowbit import group_names
            from compress.recipe import sample_recipe

            recipe = sample_recipe(trial, self.cfg.compression, group_names(spec))
            trial.set_user_attr("recipe", recipe.to_json() if recipe else "none")
            if recipe is not None:
                trial.set_user_attr("precision", recipe.precision)
        if self.on_start:
            self.on_start(trial.number, spec.format())
        torch.manual_seed(seed)
        model = build(spec)
        costs = count_costs(spec, precision=self.cfg.search.precision, model=model)
        metrics: dict[str, float] = dict(cost_attrs(costs))
        for key, value in metrics.items():
            trial.set_user_attr(key, value)
        predicted = self._predict(trial, spec, model)
        if self.profile.kind == "predicted":
            if self.profile.name not in predicted:  # e.g. an op kind the target cannot run, named there
                raise ValueError(trial.user_attrs.get(f"latency_ms_pred_{self.profile.name}_error",
                                                      f"profile {self.profile.tag} cannot price this network"))
            metrics["latency_ms"] = predicted[self.profile.name]
        if gate:
            if self.cfg.search.budgets.latency_ms is not None and self.profile.kind == "measured":
                # Dense fp32 latency does not depend on the weights: time the untrained export.
                metrics["latency_ms"] = self._measure(to_onnx(model, info), spec).median_ms
            self._gate(trial, metrics, started)

        train_started = time.perf_counter()
        losses = train(model, self.splits.x_train, self.splits.y_train, preprocess=self.splits.preprocess,
                       resolution=spec.resolution, cfg=self.cfg.train, seed=seed, teacher_logits=self.teacher_logits)
        if self.cfg.train.distill is not None:
            trial.set_user_attr("teacher", self.cfg.train.distill.model)
        trial.set_user_attr("train_loss", [round(v, 5) for v in losses])
        trial.set_user_attr("train_seconds", round(time.perf_counter() - train_started, 2))
        if recipe is not None:
            # weights.pt keeps the trained dense network, so hwnas compress can try other recipes on it
            _, onnx_bytes = self._compress(trial, model, spec, recipe, metrics, seed)
            return self._judge_artifact(trial, model, spec, info, metrics, started, onnx_bytes=onnx_bytes)
        return self._judge_artifact(trial, model, spec, info, metrics, started)

    def _compress(self, trial: optuna.Trial, model: torch.nn.Module, spec: ArchSpec, recipe: Recipe,
                  metrics: dict[str, float], seed: int) -> tuple[torch.nn.Module, bytes]:
        """Apply the trial's recipe; from here on costs and predictions are the compressed model's."""
        from compress.pipeline import apply_recipe, deployed_weight_mb

        started = time.perf_counter()
        onnx_bytes, pruned, details = apply_recipe(model, spec, recipe, self.splits, seed=seed)
        costs = count_costs(spec, precision=recipe.precision, model=pruned)
        # shared weights take their Huffman-coded bytes, 4-bit groups half a byte per weight
        costs = dataclasses.replace(costs, weight_mb=deployed_weight_mb(costs.weight_mb, details))
        if "lowbit" in details:
            trial.set_user_attr("weight_bits_note", details["lowbit"]["note"])  # type: ignore[index]
        metrics.update(cost_attrs(costs))
        for key, value in cost_attrs(costs).items():
            trial.set_user_attr(key, value)
        if "prune" in details:
            trial.set_user_attr("pruned_channels", details["prune"]["kept_channels"])  # type: ignore[index]
        predicted = self._predict(trial, spec, pruned, precision=recipe.precision)
        if self.profile.kind == "predicted":
            if self.profile.name not in predicted:
                raise ValueError(f"profile {self.profile.tag} cannot price this trial's {recipe.precision} model; "
                                 f"see latency_ms_pred_{self.profile.name}_error")
            metrics["latency_ms"] = predicted[self.profile.name]
        trial.set_user_attr("compress_seconds", round(time.perf_counter() - started, 2))
        return pruned, onnx_bytes

    def _predict(self, trial: optuna.Trial, spec: ArchSpec, model: torch.nn.Module,
                 precision: str | None = None) -> dict[str, float]:
        """Predicted latency on every calibrated predicted profile, from the layer table alone."""
        layers = layer_table(spec, model=model)
        precision = precision or self.cfg.search.precision
        out = {}
        for profile in self.predicted:
            # Another device that is not calibrated at this precision (the ZC706 runs 16-bit, the
            # Edge TPU int8) is priced at the precision it is calibrated for, and says so.
            at = precision
            if profile is not self.profile and profile.model and precision not in profile.model:
                at = next(iter(profile.model))
                trial.set_user_attr(f"latency_ms_pred_{profile.name}_precision", at)
            try:
                ms = predict(layers, profile.device_model(at), precision=at, where=f"profile {profile.tag}").total_ms
            except UserError as exc:  # e.g. an op kind the device cannot run: recorded, not fatal
                trial.set_user_attr(f"latency_ms_pred_{profile.name}_error", str(exc))
                continue
            out[profile.name] = ms
            trial.set_user_attr(f"latency_ms_pred_{profile.name}", round(ms, 4))
        return out

    def _gate(self, trial: optuna.Trial, metrics: dict[str, float], started: float) -> None:
        budgets = self.cfg.search.budgets
        violations = budget_violations(metrics, budgets)
        if any(v > 0 for v in violations.values()):
            for key, value in violations.items():
                trial.set_constraint(key, value)
            reason = describe_violations(violations, metrics, budgets)
            trial.set_user_attr("feasible", False)
            trial.set_user_attr("rejected_before_training", True)
            trial.set_user_attr("infeasible_reason", reason)
            if "latency_ms" in metrics:
                trial.set_user_attr("latency_ms", round(metrics["latency_ms"], 4))
                trial.set_user_attr("latency_kind", self.profile.kind)
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
            raise optuna.TrialPruned(f"over budget before training: {reason}")

    def _judge_artifact(self, trial: optuna.Trial, model: torch.nn.Module, spec: ArchSpec, info: DeployInfo,
                        metrics: dict[str, float], started: float, *, onnx_bytes: bytes | None = None) -> tuple[float, ...]:
        """Export (or take the compressed file), then take accuracy and latency from the file itself."""
        out = self.trial_dir(trial.number)
        out.mkdir(parents=True, exist_ok=True)
        if onnx_bytes is None:
            onnx_bytes = to_onnx(model, info)
        (out / "model.onnx").write_bytes(onnx_bytes)
        torch.save(model.state_dict(), out / "weights.pt")
        latency = self._measure(onnx_bytes, spec)  # the exported file on this host, whatever the target
        splits = self.splits
        val_acc = onnx_accuracy(onnx_bytes, splits.x_val, splits.y_val, preprocess=splits.preprocess,
                                resolution=spec.resolution)
        test_acc = onnx_accuracy(onnx_bytes, splits.x_test, splits.y_test, preprocess=splits.preprocess,
                                 resolution=spec.resolution)
        if self.profile.kind == "measured":
            metrics["latency_ms"] = latency.median_ms
        metrics["accuracy"] = val_acc
        violations = budget_violations(metrics, self.cfg.search.budgets)
        for key, value in violations.items():
            trial.set_constraint(key, value)
        feasible = all(v <= 0 for v in violations.values())
        attrs = {"val_accuracy": round(val_acc, 5), "test_accuracy": round(test_acc, 5),
                 "latency_ms": round(metrics["latency_ms"], 4), "latency_ms_meas_cpu": round(latency.median_ms, 4),
                 "latency_p90_ms_meas_cpu": round(latency.p90_ms, 4), "latency_kind": self.profile.kind,
                 "latency_how": (latency.describe() if self.profile.kind == "measured" else
                                 f"predicted by the per-layer model of profile {self.profile.tag}"),
                 "feasible": feasible,
                 "rejected_before_training": False, "onnx_path": str(Path(self.artifacts) / out.name / "model.onnx"),
                 "weights_path": str(Path(self.artifacts) / out.name / "weights.pt"), "file_bytes": len(onnx_bytes),
                 "seconds": round(time.perf_counter() - started, 2)}
        if not feasible:
            attrs["infeasible_reason"] = describe_violations(violations, metrics, self.cfg.search.budgets)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return tuple(float(metrics[name]) for name in self.cfg.search.objectives)


def directions(objectives: tuple[str, ...]) -> list[str]:
    return [OBJECTIVES[name] for name in objectives]
