"""The one record of a trial: every figure it reports, typed. :meth:`CandidateResult.to_attrs` and
:meth:`CandidateResult.from_attrs` are the only place the Optuna user-attribute keys are spelled;
report, progress, baselines and the CLI read trials through :func:`result_of`.

Storage keys are flat, so optuna-dashboard shows each figure in its own column: the predictions
of each profile are ``latency_ms_pred_<profile>`` (with ``..._precision`` when the profile was
priced at another precision than the trial's, ``..._error`` when it could not price the network).
A trial also carries ``record_version``; trials of the first version (none) read the same way.

>>> r = CandidateResult(arch="in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2", seed=1, profile="cpu",
...                     profile_version="1", precision="fp32", predicted={"rpi": PredictedLatency(ms=2.5)})
>>> r.to_attrs()["latency_ms_pred_rpi"], CandidateResult.from_attrs(r.to_attrs()) == r
(2.5, True)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from nas.core.errors import UserError
from nas.cost.costs import ModelCosts
from nas.hardware.pricing import PredictedLatency

RECORD_VERSION = 2
# trials.csv: these stored keys, in this order (after trial and state, before predictions and parameters)
TABLE_COLUMNS = ("baseline", "arch", "test_accuracy", "val_accuracy", "macs", "parameters", "latency_ms",
                 "latency_kind", "peak_memory_mb", "weight_mb", "peak_activation_mb", "file_bytes", "feasible",
                 "rejected_before_training", "infeasible_reason", "stopped_at_rung", "stop_reason", "error",
                 "onnx_path", "seconds", "seed",
                 "profile", "profile_version", "artifact", "artifact_runtime", "edgetpu_ready", "export_errors")
_PRED = "latency_ms_pred_"
_HOST = "latency_ms_meas_cpu"
_HOST_P90 = "latency_p90_ms_meas_cpu"
RUNG = "val_accuracy_epoch_"  # + the epoch: validation accuracy at an early-stopping rung (PyTorch, not the file)
# Optional scalar fields stored under their own name, with the decimals they are rounded to (None: as is).
_SCALARS: dict[str, int | None] = {
    "recipe": None, "baseline": None, "family": None, "teacher": None, "inherited": None, "weight_bits_note": None,
    "latency_ms": 4, "latency_kind": None, "latency_how": None, "val_accuracy": 5, "test_accuracy": 5,
    "onnx_path": None, "weights_path": None, "file_bytes": None, "feasible": None,
    "rejected_before_training": None, "infeasible_reason": None, "train_seconds": 2, "compress_seconds": 2,
    "seconds": 3, "error": None, "artifact": None, "artifact_runtime": None, "edgetpu_ready": None,
    "edgetpu_summary": None, "export_errors": None, "stopped_at_rung": None, "stop_reason": None,
}


@dataclass(frozen=True)
class CandidateResult:
    """What one candidate (searched trial or baseline) reports. Latencies say how they were
    obtained: ``latency_ms`` is the search's latency (``latency_kind`` measured or predicted, by
    ``latency_how``), ``host_latency_ms`` the exported file timed on this host, ``predicted`` each
    calibrated profile's prediction. Accuracies are measured on the exported file."""

    arch: str
    seed: int
    profile: str
    profile_version: str
    precision: str
    recipe: str | None = None  # JSON; "none" when the search compresses but this trial sampled nothing
    baseline: str | None = None
    family: str | None = None
    teacher: str | None = None
    inherited: str | None = None  # weights taken from a supernet (which file), not trained for this trial
    costs: ModelCosts | None = None
    predicted: Mapping[str, PredictedLatency] = field(default_factory=dict)
    latency_ms: float | None = None
    latency_kind: str | None = None
    latency_how: str | None = None
    host_latency_ms: float | None = None
    host_latency_p90_ms: float | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    onnx_path: str | None = None  # relative to the run folder
    weights_path: str | None = None
    file_bytes: int | None = None
    feasible: bool | None = None
    rejected_before_training: bool | None = None
    infeasible_reason: str | None = None
    constraints: Mapping[str, float] = field(default_factory=dict)  # budget excess; Optuna keeps these itself
    weight_bits_note: str | None = None
    pruned_channels: Mapping[str, list[int]] | None = None
    train_loss: tuple[float, ...] = ()
    train_seconds: float | None = None
    compress_seconds: float | None = None
    seconds: float | None = None
    error: str | None = None
    artifact: str | None = None  # the primary file (relative path): accuracy and file_bytes are its
    artifact_runtime: str | None = None  # what measured the primary file's accuracy
    artifacts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # every file by kind, with figures
    edgetpu_ready: bool | None = None  # the int8 TFLite file passes the Edge TPU readiness check
    edgetpu_summary: str | None = None
    export_errors: str | None = None  # files of the trial's kinds a converter could not make, one reason each
    # early stopping (search.early_stopping): validation accuracy at each rung reached, by epoch, measured
    # on the PyTorch model during training; the rung that stopped the trial and why (never exported)
    rung_accuracy: Mapping[int, float] = field(default_factory=dict)
    stopped_at_rung: int | None = None
    stop_reason: str | None = None

    @property
    def latency_caveat(self) -> str | None:
        """Why the search's latency is an extrapolation (EXTRAPOLATED ...), when it is predicted."""
        if self.latency_kind != "predicted":
            return None
        mine = self.predicted.get(self.profile)
        return mine.caveat if mine is not None else None

    @property
    def latency_band(self) -> tuple[float, float] | None:
        """The target's prediction interval (10th-90th percentile of held-out error), when predicted."""
        if self.latency_kind != "predicted":
            return None
        mine = self.predicted.get(self.profile)
        return mine.band_ms if mine is not None else None

    def objective(self, name: str) -> float:
        """The value of one search objective (``accuracy`` is the validation accuracy)."""
        if name == "accuracy":
            return _required(self.val_accuracy, name)
        if name == "latency_ms":
            return _required(self.latency_ms, name)
        costs = self.costs
        if costs is None:
            raise ValueError(f"objective {name}: the record has no costs")
        return float({"macs": costs.macs, "parameters": costs.params, "peak_memory_mb": costs.memory_mb}[name])

    def to_attrs(self) -> dict[str, Any]:
        """The Optuna user attributes of this record (figures rounded; absent fields left out)."""
        attrs: dict[str, Any] = {"record_version": RECORD_VERSION, "arch": self.arch, "seed": self.seed,
                                 "profile": self.profile, "profile_version": self.profile_version,
                                 "precision": self.precision}
        if self.costs is not None:
            attrs |= _cost_attrs(self.costs)
        for name, prediction in self.predicted.items():
            attrs |= _prediction_attrs(name, prediction)
        if self.host_latency_ms is not None:
            attrs[_HOST] = round(self.host_latency_ms, 4)
        if self.host_latency_p90_ms is not None:
            attrs[_HOST_P90] = round(self.host_latency_p90_ms, 4)
        for key, decimals in _SCALARS.items():
            value = getattr(self, key)
            if value is not None:
                attrs[key] = value if decimals is None else round(value, decimals)
        if self.pruned_channels is not None:
            attrs["pruned_channels"] = {k: list(v) for k, v in self.pruned_channels.items()}
        if self.train_loss:
            attrs["train_loss"] = [round(v, 5) for v in self.train_loss]
        if self.artifacts:
            attrs["artifacts"] = {k: dict(v) for k, v in self.artifacts.items()}
        attrs |= rung_attrs(self.rung_accuracy)
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], *, constraints: Mapping[str, float] | None = None) -> CandidateResult:
        """The record stored as ``attrs`` (this version's or the first's); a newer version is a
        one-line error."""
        version = int(attrs.get("record_version", 1))
        if version > RECORD_VERSION:
            raise UserError(f"trial written by a newer hwnas (record version {version}; this one reads up to "
                            f"{RECORD_VERSION}): upgrade hwnas to read this study")
        if "arch" not in attrs:
            raise UserError("trial has no arch attribute: not a trial written by hwnas search or baselines")
        return cls(arch=attrs["arch"], seed=int(attrs.get("seed", 0)), profile=attrs.get("profile", ""),
                   profile_version=str(attrs.get("profile_version", "")), precision=attrs.get("precision", "fp32"),
                   costs=_costs_of(attrs), predicted=_predictions_of(attrs), host_latency_ms=attrs.get(_HOST),
                   host_latency_p90_ms=attrs.get(_HOST_P90), pruned_channels=attrs.get("pruned_channels"),
                   train_loss=tuple(attrs.get("train_loss", ())), constraints=dict(constraints or {}),
                   artifacts=dict(attrs.get("artifacts") or {}), rung_accuracy=rung_accuracy_of(attrs),
                   **{key: attrs.get(key) for key in _SCALARS})

    def table_row(self) -> dict[str, Any]:
        """The columns of trials.csv (:data:`TABLE_COLUMNS`, then host and predicted latencies)."""
        attrs = self.to_attrs()
        row = {key: attrs.get(key) for key in TABLE_COLUMNS}
        for key in sorted(attrs):
            if key.startswith(_PRED) and key.endswith("_band"):  # two columns: the interval's ends
                row[f"{key}_lo"], row[f"{key}_hi"] = attrs[key]
            elif key.startswith((_PRED, _HOST, RUNG)):
                row[key] = attrs[key]
        return row


def rung_attrs(accuracy: Mapping[int, float]) -> dict[str, float]:
    """The stored keys of the accuracy at each rung (one flat key per epoch: a dashboard column)."""
    return {f"{RUNG}{epoch}": round(value, 5) for epoch, value in sorted(accuracy.items())}


def rung_accuracy_of(attrs: Mapping[str, Any]) -> dict[int, float]:
    return {int(key.removeprefix(RUNG)): float(value) for key, value in attrs.items() if key.startswith(RUNG)}


def failure_attrs(error: str) -> dict[str, Any]:
    """The attributes of a trial that failed before it had a result (its worker died): its error."""
    return {"error": error}


def result_of(trial: optuna.trial.FrozenTrial) -> CandidateResult | None:
    """The record of a finished or failed trial; None for a trial that stored none (failed before
    sampling), and for a running trial whose record is still being written: storages take the
    attributes one by one, so another worker (writing tables when it finishes) may see part of it."""
    if "arch" not in trial.user_attrs:
        return None
    constraints = {k.removeprefix("constraints:"): v for k, v in trial.system_attrs.items()
                   if k.startswith("constraints:")}
    try:
        return CandidateResult.from_attrs(trial.user_attrs, constraints=constraints)
    except (KeyError, TypeError, ValueError):
        if trial.state == optuna.trial.TrialState.RUNNING:
            return None
        raise


def _required(value: float | None, name: str) -> float:
    if value is None:
        raise ValueError(f"objective {name}: the record has no value")
    return float(value)


def _cost_attrs(costs: ModelCosts) -> dict[str, float | int]:
    return {"macs": costs.macs, "parameters": costs.params, "weight_mb": round(costs.weight_mb, 6),
            "peak_activation_mb": round(costs.peak_activation_mb, 6), "peak_memory_mb": round(costs.memory_mb, 6)}


def _costs_of(attrs: Mapping[str, Any]) -> ModelCosts | None:
    if "macs" not in attrs:
        return None
    return ModelCosts(macs=int(attrs["macs"]), params=int(attrs["parameters"]), weight_mb=float(attrs["weight_mb"]),
                      peak_activation_mb=float(attrs["peak_activation_mb"]),
                      precision=attrs.get("precision", "fp32"))


def _prediction_attrs(profile: str, p: PredictedLatency) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.precision is not None:
        out[f"{_PRED}{profile}_precision"] = p.precision
    if p.ms is not None:
        out[f"{_PRED}{profile}"] = round(p.ms, 4)
    if p.error is not None:
        out[f"{_PRED}{profile}_error"] = p.error
    if p.caveat is not None:
        out[f"{_PRED}{profile}_caveat"] = p.caveat
    if p.band_ms is not None:
        out[f"{_PRED}{profile}_band"] = [round(v, 4) for v in p.band_ms]
    return out


def _predictions_of(attrs: Mapping[str, Any]) -> dict[str, PredictedLatency]:
    names = sorted({k.removeprefix(_PRED).removesuffix("_precision").removesuffix("_error").removesuffix("_caveat")
                    .removesuffix("_band") for k in attrs if k.startswith(_PRED)})
    return {n: PredictedLatency(ms=attrs.get(f"{_PRED}{n}"), precision=attrs.get(f"{_PRED}{n}_precision"),
                                error=attrs.get(f"{_PRED}{n}_error"), caveat=attrs.get(f"{_PRED}{n}_caveat"),
                                band_ms=_band(attrs.get(f"{_PRED}{n}_band")))
            for n in names}


def _band(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))
