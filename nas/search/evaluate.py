"""The evaluation of one candidate, without Optuna: price -> gate on budgets -> train -> compress ->
export -> measure the exported file, returning one :class:`~nas.search.record.CandidateResult`.

The trainer and the host measurer are part of the :class:`EvalContext` (real ones by default), so
tests pass fakes. The latency source is chosen once per search (:mod:`nas.hardware.latency_source`).

>>> context = EvalContext.for_search(cfg, load_profile("cpu"), splits)  # doctest: +SKIP
>>> result = evaluate(parse(arch), None, context, seed=0, files=TrialFiles(run_dir, "trials/0000"))  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from compress.pipeline import apply_recipe, deployed_weight_mb
from compress.recipe import Recipe, tflite_int8_options
from nas.core.config import Budgets, SearchConfig, TrainConfig
from nas.core.errors import UserError
from nas.core.files import write_atomic
from nas.core.progress import note
from nas.core.vocab import BUDGET_KEYS
from nas.cost.costs import ModelCosts, count_costs
from nas.data.splits import Preprocess, Splits
from nas.deploy.artifacts import (ARTIFACT_KINDS, ArtifactKind, MeasuredFile, kinds, not_written, primary_kind,
                                  tflite_file)
from nas.deploy.export import DeployInfo, onnx_accuracy, to_onnx
from nas.deploy.host_latency import LatencyMeasurement
from nas.deploy.tflite import require as require_tflite
from nas.hardware.latency_source import LatencySource, latency_source
from nas.hardware.pricing import PredictedLatency, measure_on_host, predict_on_profiles
from nas.hardware.profiles import HardwareProfile, calibrated_predicted_profiles
from nas.search.int8_qat import final_qat_weights
from nas.search.mo_asha import EarlyStopped
from nas.search.record import CandidateResult
from nas.space.arch import ArchSpec
from nas.space.builder import Net, build
from nas.train.final import accuracy
from nas.train.teacher import teacher_logits
from nas.train.trainer import EpochHook, train

log = logging.getLogger(__name__)


class Trainer(Protocol):
    """Trains ``model`` in place and returns the mean loss of each epoch (:func:`nas.train.trainer.train`)."""

    def __call__(self, model: Net, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess,
                 resolution: int, cfg: TrainConfig, seed: int, teacher_logits: np.ndarray | None = None,
                 on_epoch: EpochHook | None = None) -> list[float]:
        ...


HostMeasurer = Callable[[bytes, ArchSpec, HardwareProfile], LatencyMeasurement]
# early stopping's judge (nas.search.rungs): (epoch, validation accuracy there, the candidate's costs in
# objective order); it raises EarlyStopped to stop the candidate
RungHook = Callable[[int, float, Sequence[float]], None]


def measure_file(onnx_bytes: bytes, spec: ArchSpec, host: HardwareProfile) -> LatencyMeasurement:
    """The default host measurer: onnxruntime on this machine under ``host``'s conditions."""
    return measure_on_host(spec, host, onnx_bytes)


@dataclass(frozen=True)
class EvalContext:
    """What every evaluation of a search shares."""

    cfg: SearchConfig
    splits: Splits
    source: LatencySource
    predictors: tuple[HardwareProfile, ...]  # calibrated predicted profiles every candidate is priced on
    trainer: Trainer = train
    measure: HostMeasurer = measure_file
    teacher_logits: np.ndarray | None = None
    precision: str = "fp32"  # what a candidate is priced at before compression (artifact_precision)
    artifacts: tuple[ArtifactKind, ...] = (ARTIFACT_KINDS["onnx"],)  # the files each candidate is exported as
    weights_from: str | None = None  # the trainer inherits weights (a supernet): which, recorded on each trial

    @classmethod
    def for_search(cls, cfg: SearchConfig, profile: HardwareProfile, splits: Splits, *, trainer: Trainer = train,
                   measure: HostMeasurer | None = None) -> EvalContext:
        """The context of a search on ``profile``: its latency source, every calibrated predicted
        profile (the target first), and the teacher's logits when training is distilled."""
        precision = artifact_precision(cfg, profile)
        source = latency_source(profile, precision=precision, budget_quantile=cfg.search.budget_quantile)
        others = [p for p in calibrated_predicted_profiles() if p.name != profile.name]
        predictors = ([profile] if source.kind == "predicted" else []) + others
        logits = teacher_logits(cfg.train.distill, splits) if cfg.train.distill is not None else None
        return cls(cfg, splits, source, tuple(predictors), trainer, measure or measure_file, logits, precision,
                   artifact_kinds(cfg, profile))


def artifact_kinds(cfg: SearchConfig, profile: HardwareProfile) -> tuple[ArtifactKind, ...]:
    """The files each trial is exported as: ``search.artifacts``, else the profile's. TFLite
    needs the optional extra; without it this is a one-line error before any training."""
    chosen = kinds(cfg.search.artifacts or profile.artifacts)
    if any(k.format == "tflite" for k in chosen):
        require_tflite()
    return chosen


def artifact_precision(cfg: SearchConfig, profile: HardwareProfile) -> str:
    """The precision a candidate's latency is priced at before compression: int8 on a device
    that runs it when every trial is exported as static int8 (``compression.quantize: [static]``);
    else the search's own where the target runs it (compressed trials are then priced at their
    recipe's precision). An int8-only device (the Edge TPU, a DPU) requires every trial to be
    exported as static int8, so a search that would train fp32 models for it is refused in one line."""
    device = profile.device
    quantize = cfg.compression.quantize if cfg.compression is not None else ("none",)
    if device is not None and "int8" in device.macs_per_s and tuple(quantize) == ("static",):
        return "int8"  # every trial ships as int8: gate on what ships
    if device is None or cfg.search.precision in device.macs_per_s:
        return cfg.search.precision
    raise UserError(f"profile {profile.tag} runs {', '.join(device.macs_per_s)} only and this search would export "
                    f"{cfg.search.precision} models (compression.quantize: [{', '.join(quantize)}]); set "
                    f"compression.quantize: [static] so every trial is exported as int8")


@dataclass(frozen=True)
class TrialFiles:
    """Where a candidate's files go: ``run_dir / rel``; records keep paths relative to ``run_dir``."""

    run_dir: Path
    rel: str

    @property
    def dir(self) -> Path:
        return self.run_dir / self.rel


class CandidateFailed(Exception):
    """An evaluation raised; ``record`` holds what was computed before, with the error."""

    def __init__(self, record: CandidateResult) -> None:
        super().__init__(record.error)
        self.record = record


def budget_violations(values: Mapping[str, float], budgets: Budgets) -> dict[str, float]:
    """Relative excess over each budget that applies: ``value / budget - 1`` (<= 0 is feasible)."""
    out = {}
    for key in BUDGET_KEYS:
        limit = getattr(budgets, key)
        if limit is not None and key in values:
            out[key] = values[key] / limit - 1.0
    return out


def describe_violations(violations: Mapping[str, float], values: Mapping[str, float], budgets: Budgets) -> str:
    return "; ".join(f"{k} {values[k]:.4g} > {getattr(budgets, k):.4g}" for k, v in violations.items() if v > 0)


def _budget_values(costs: ModelCosts, latency_ms: float | None, latency_ratio: float = 1.0) -> dict[str, float]:
    """The figures budgets hold: latency times ``latency_ratio`` (the budget quantile's error ratio)."""
    latency_ms = None if latency_ms is None else latency_ms * latency_ratio
    values = {"macs": float(costs.macs), "peak_memory_mb": round(costs.memory_mb, 6)}
    return values | ({"latency_ms": latency_ms} if latency_ms is not None else {})


class _Evaluation:
    """One evaluation in progress; ``record`` grows as steps finish, so a failure keeps what was done."""

    def __init__(self, spec: ArchSpec, recipe: Recipe | None, context: EvalContext, seed: int,
                 files: TrialFiles) -> None:
        cfg = context.cfg
        self.spec, self.recipe, self.context, self.seed, self.files = spec, recipe, context, seed, files
        self.started = time.perf_counter()
        self.latency_before_training: float | None = None  # priced by the gate or for early stopping
        self.info = DeployInfo.for_arch(spec, context.splits.preprocess, context.splits.classes)
        recipe_json = recipe.to_json() if recipe else ("none" if cfg.compression is not None else None)
        self.record = CandidateResult(arch=spec.format(), seed=seed, profile=context.source.profile.name,
                                      profile_version=context.source.profile.version,
                                      precision=recipe.precision if recipe else context.precision,
                                      recipe=recipe_json)

    def update(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)  # replace rejects names that are not fields

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def price(self, model: Net, precision: str) -> tuple[ModelCosts, dict[str, PredictedLatency]]:
        """Costs and every profile's prediction of ``model``, recorded."""
        costs = count_costs(self.spec, precision=precision, model=model)
        predicted = predict_on_profiles(self.spec, model, self.context.predictors, precision=precision,
                                        target=self.context.source.profile)
        self.update(costs=costs, predicted=predicted)
        return costs, predicted

    def _untrained_latency(self, model: Net) -> float:
        onnx_bytes = to_onnx(model, self.info)
        device = self.context.source.on_device(onnx_bytes, self.spec)  # a remote profile: on the device
        return (device or self.context.measure(onnx_bytes, self.spec, self.context.source.host)).median_ms

    def gate(self, model: Net, costs: ModelCosts, predicted: Mapping[str, PredictedLatency]) -> bool:
        """Reject before training when over a budget (recorded); True when rejected."""
        budgets, source = self.context.cfg.search.budgets, self.context.source
        untrained = functools.partial(self._untrained_latency, model)
        latency = source.before_training(predicted, untrained if budgets.latency_ms is not None else None)
        self.latency_before_training = latency
        values = _budget_values(costs, latency, source.budget_ratio)
        violations = budget_violations(values, budgets)
        if not any(v > 0 for v in violations.values()):
            return False
        self.update(feasible=False, rejected_before_training=True, constraints=violations,
                    infeasible_reason=describe_violations(violations, values, budgets), latency_ms=latency,
                    latency_kind=source.kind if latency is not None else None, seconds=self.elapsed())
        return True

    def rung_costs(self, model: Net, predicted: Mapping[str, PredictedLatency]) -> list[float]:
        """The candidate's costs in objective order (accuracy left out), known before training:
        what early stopping ranks it on beside its accuracy at a rung. The dense network's (a
        recipe's compression comes after training)."""
        out = []
        for name in self.context.cfg.search.objectives:
            if name == "latency_ms":
                if self.latency_before_training is None:
                    self.latency_before_training = self.context.source.before_training(
                        predicted, functools.partial(self._untrained_latency, model))
                assert self.latency_before_training is not None
                out.append(self.latency_before_training)
            elif name != "accuracy":
                out.append(self.record.objective(name))  # MACs, parameters, memory: from the priced costs
        return out

    def _at_epoch(self, at_rung: RungHook, costs: Sequence[float], epoch: int, model: nn.Module) -> None:
        stopping = self.context.cfg.search.early_stopping
        if stopping is None or epoch not in stopping.rungs:
            return
        splits = self.context.splits
        device = next(model.parameters()).device
        value = accuracy(model, splits.x_val, splits.y_val, preprocess=splits.preprocess,
                         resolution=self.spec.resolution, device=device)
        self.update(rung_accuracy={**self.record.rung_accuracy, epoch: value})
        note("    rung at epoch %d: validation accuracy %.2f%%", epoch, 100 * value)
        at_rung(epoch, value, costs)

    def train(self, model: Net, at_rung: RungHook | None = None,
              predicted: Mapping[str, PredictedLatency] | None = None) -> None:
        context, splits = self.context, self.context.splits
        hook = None
        if at_rung is not None and context.cfg.search.early_stopping is not None:
            hook = functools.partial(self._at_epoch, at_rung, self.rung_costs(model, predicted or {}))
        started = time.perf_counter()
        try:
            losses = context.trainer(model, splits.x_train, splits.y_train, preprocess=splits.preprocess,
                                     resolution=self.spec.resolution, cfg=context.cfg.train, seed=self.seed,
                                     teacher_logits=context.teacher_logits, on_epoch=hook)
        finally:
            self.update(train_seconds=time.perf_counter() - started)
        distill = context.cfg.train.distill
        self.update(train_loss=tuple(losses),
                    teacher=distill.model if distill is not None and context.weights_from is None else None,
                    inherited=context.weights_from)

    def compress(self, model: Net, recipe: Recipe) -> tuple[bytes, Net, dict[str, PredictedLatency]]:
        """Apply the recipe; from here on costs and predictions are the compressed model's."""
        started = time.perf_counter()
        onnx_bytes, pruned, details = apply_recipe(model, self.spec, recipe, self.context.splits, seed=self.seed)
        costs, predicted = self.price(pruned, recipe.precision)
        # shared weights take their Huffman-coded bytes, 4-bit groups half a byte per weight
        costs = dataclasses.replace(costs, weight_mb=deployed_weight_mb(costs.weight_mb, details))
        self.update(costs=costs, weight_bits_note=details.lowbit_note, pruned_channels=details.kept_channels,
                    compress_seconds=time.perf_counter() - started)
        self.context.source.before_training(predicted, None)  # raises when the target cannot price the result
        return onnx_bytes, pruned, predicted

    def _onnx_file(self, kind: ArtifactKind, rel: str, onnx_bytes: bytes, host: LatencyMeasurement) -> MeasuredFile:
        splits, resolution = self.context.splits, self.spec.resolution
        accuracy = {name: onnx_accuracy(onnx_bytes, x, y, preprocess=splits.preprocess, resolution=resolution)
                    for name, x, y in (("val", splits.x_val, splits.y_val), ("test", splits.x_test, splits.y_test))}
        return MeasuredFile(kind.name, rel, len(onnx_bytes), host.runtime, accuracy["val"], accuracy["test"],
                            host.median_ms, host.p90_ms, host.describe(), "torch.onnx (TorchScript exporter)"
                            + (", then the recipe's quantizer" if self.recipe else ""))

    def _tflite_file(self, model: Net, kind: ArtifactKind, rel: str) -> tuple[bytes, MeasuredFile]:
        """``kind``'s TFLite file of ``model``, measured; a final's int8 file also from its QAT copy."""
        splits, spec = self.context.splits, self.spec
        qat = final_qat_weights(model, self.context.cfg.train, self.recipe, splits, resolution=spec.resolution,
                                seed=self.seed) if kind.precision == "int8" else None
        return tflite_file(model, self.info, kind, splits, resolution=spec.resolution, seed=self.seed, rel_path=rel,
                           int8=tflite_int8_options(self.recipe), qat=qat)

    def judge(self, model: Net, onnx_bytes: bytes | None, predicted: Mapping[str, PredictedLatency],
              compressed: Net | None = None) -> None:
        """Export every artifact kind, then take accuracy and latency from the files themselves:
        the record reports the primary file's (see :mod:`nas.deploy.artifacts`)."""
        context, splits, spec = self.context, self.context.splits, self.spec
        out = self.files.dir
        out.mkdir(parents=True, exist_ok=True)
        onnx_bytes = onnx_bytes if onnx_bytes is not None else to_onnx(model, self.info)
        write_atomic(out / "model.onnx", onnx_bytes)
        torch.save(model.state_dict(), out / "weights.pt")  # the trained dense network, for hwnas compress
        host = context.measure(onnx_bytes, spec, context.source.host)  # the file on this host, whatever the target
        files: dict[str, MeasuredFile] = {}
        primary_of = primary_kind(context.artifacts, self.record.precision)
        unwritten = []
        for kind in context.artifacts:
            note("    exporting and measuring %s", kind.filename)
            rel = str(Path(self.files.rel) / kind.filename)
            if kind.format == "onnx":
                files[kind.name] = self._onnx_file(kind, rel, onnx_bytes, host)
                continue
            try:
                data, measured = self._tflite_file(compressed if compressed is not None else model, kind, rel)
            except Exception as exc:  # noqa: BLE001 - a converter's failure costs that file, not the trial
                if kind is primary_of:
                    raise
                unwritten.append(not_written(kind, exc))
                log.warning("%s", unwritten[-1])
                continue
            write_atomic(out / kind.filename, data)
            files[kind.name] = measured
        primary = files[primary_of.name]
        device = context.source.on_device(onnx_bytes, spec)  # a remote profile: the file timed on the device
        latency = device.median_ms if device is not None else context.source.of_artifact(predicted, host)
        how = device.describe() if device is not None else context.source.how(host)
        mine = predicted.get(context.source.profile.name)
        if context.source.kind == "predicted" and mine is not None and mine.caveat:
            how += f"; {mine.caveat}"
        assert self.record.costs is not None
        values = _budget_values(self.record.costs, latency, context.source.budget_ratio)
        violations = budget_violations(values, context.cfg.search.budgets)
        feasible = all(v <= 0 for v in violations.values())
        int8 = files.get("tflite-int8")
        readiness = dict(int8.extra) if int8 is not None else {}
        self.update(val_accuracy=primary.val_accuracy, test_accuracy=primary.test_accuracy, latency_ms=latency,
                    host_latency_ms=host.median_ms, host_latency_p90_ms=host.p90_ms,
                    latency_kind=context.source.kind, latency_how=how, feasible=feasible,
                    rejected_before_training=False, constraints=violations,
                    onnx_path=str(Path(self.files.rel) / "model.onnx"),
                    weights_path=str(Path(self.files.rel) / "weights.pt"), file_bytes=primary.bytes,
                    artifact=primary.path, artifact_runtime=primary.runtime,
                    artifacts={k: f.to_json() for k, f in files.items()},
                    edgetpu_ready=readiness.get("edgetpu_ready"), edgetpu_summary=readiness.get("edgetpu_summary"),
                    export_errors="; ".join(unwritten) or None,
                    infeasible_reason=None if feasible else describe_violations(violations, values,
                                                                                context.cfg.search.budgets),
                    seconds=self.elapsed())


def evaluate(spec: ArchSpec, recipe: Recipe | None, context: EvalContext, *, seed: int, files: TrialFiles,
             gate: bool = True, at_rung: RungHook | None = None) -> CandidateResult:
    """Price, gate (unless ``gate`` is False: over budget is then recorded as infeasible, not
    rejected), train, compress, export and measure one candidate. A candidate over budget comes
    back with ``rejected_before_training``; one ``at_rung`` stopped (``search.early_stopping``)
    with ``stopped_at_rung``, neither exported nor measured. An error or a Ctrl-C raises
    :class:`CandidateFailed` holding the partial record, the original exception as its ``__cause__``."""
    run = _Evaluation(spec, recipe, context, seed, files)
    try:
        torch.manual_seed(seed)
        model = build(spec)
        costs, predicted = run.price(model, context.precision)
        if gate and run.gate(model, costs, predicted):
            return run.record
        if not gate:
            context.source.before_training(predicted, None)  # a target that cannot price it fails here too
        try:
            run.train(model, at_rung, predicted)
        except EarlyStopped as stopped:
            run.update(stopped_at_rung=stopped.rung, stop_reason=stopped.reason, seconds=run.elapsed())
            return run.record
        onnx_bytes, compressed = None, None
        if recipe is not None:
            onnx_bytes, compressed, predicted = run.compress(model, recipe)
        run.judge(model, onnx_bytes, predicted, compressed)
        return run.record
    except (Exception, KeyboardInterrupt) as exc:  # the cause travels on: a Ctrl-C still stops the search
        run.update(error=(type(exc).__name__ + (f": {exc}" if str(exc) else ""))[:1000], seconds=run.elapsed())
        raise CandidateFailed(run.record) from exc
