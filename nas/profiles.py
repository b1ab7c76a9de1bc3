"""Hardware profiles (``hw_profiles/*.yaml``): versioned, validated, with provenance.

Two kinds: ``measured``, a host whose latency hwnas measures itself with onnxruntime (``cpu``), and
``predicted``, a device priced by the per-layer model of :mod:`nas.latency_model` from datasheet
numbers (each with its source) and fitted efficiencies and overheads (with how they were fitted).

>>> load_profile("cpu").latency.threads
1
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from nas._schema import check, check_choices, from_mapping
from nas.errors import UserError
from nas.latency_model import ALL_KINDS, COMPUTE_KINDS, DeviceModel

PROFILE_KINDS = ("measured", "predicted")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class MeasuredLatency:
    runtime: str = "onnxruntime"
    threads: int = 1
    warmup: int = 10
    repeats: int = 50
    batch: int = 1

    def __post_init__(self) -> None:
        check(self.runtime == "onnxruntime", "latency.runtime", self.runtime, "onnxruntime")
        check(self.threads >= 1, "latency.threads", self.threads, "integers >= 1")
        check(self.repeats >= 3, "latency.repeats", self.repeats, "integers >= 3")
        check(self.warmup >= 0, "latency.warmup", self.warmup, "integers >= 0")
        check(self.batch == 1, "latency.batch", self.batch, "1")


@dataclass(frozen=True)
class MemorySpec:
    capacity_mb: float | None = None
    provenance: str = ""


@dataclass(frozen=True)
class Sourced:
    """A number and where it comes from (datasheet, measurement or fit, with date and method)."""

    value: float
    source: str

    def __post_init__(self) -> None:
        check(self.value > 0, "value", self.value, "numbers > 0")
        check(bool(self.source.strip()), "source", self.source, "a non-empty provenance")


@dataclass(frozen=True)
class DeviceSpec:
    """Datasheet side of a predicted profile."""

    macs_per_s: dict[str, Sourced]  # peak multiply-adds per second, by precision the device runs
    bandwidth_gb_s: Sourced

    def __post_init__(self) -> None:
        check_choices(self.macs_per_s, "device.macs_per_s", PRECISIONS)


@dataclass(frozen=True)
class FittedModel:
    """Fitted side of a predicted profile (see nas.latency_model)."""

    efficiency: dict[str, float]
    bandwidth_efficiency: float
    overhead_ms: dict[str, float]
    fuses_activations: bool
    fit: str  # method, data, date, cross-validated error

    def __post_init__(self) -> None:
        check_choices(self.efficiency, "model.efficiency", COMPUTE_KINDS)
        check(set(self.efficiency) == set(COMPUTE_KINDS), "model.efficiency", sorted(self.efficiency),
              f"one entry per compute kind: {', '.join(COMPUTE_KINDS)}")
        for kind, eff in self.efficiency.items():
            check(0 < eff <= 1, f"model.efficiency.{kind}", eff, "0 < x <= 1")
        check(0 < self.bandwidth_efficiency <= 1, "model.bandwidth_efficiency", self.bandwidth_efficiency, "0 < x <= 1")
        check_choices(self.overhead_ms, "model.overhead_ms", ALL_KINDS)
        for kind, ms in self.overhead_ms.items():
            check(ms >= 0, f"model.overhead_ms.{kind}", ms, "numbers >= 0")


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    version: str
    kind: str
    description: str
    provenance: str
    latency: MeasuredLatency | None = None  # measured profiles
    device: DeviceSpec | None = None  # predicted profiles
    model: FittedModel | None = None  # predicted profiles
    memory: MemorySpec = field(default_factory=MemorySpec)

    def __post_init__(self) -> None:
        check(self.kind in PROFILE_KINDS, "kind", self.kind, ", ".join(PROFILE_KINDS))
        check(bool(self.version), "version", self.version, "a non-empty version string")
        if self.kind == "measured":
            check(self.latency is not None, "latency", None, "a latency section for measured profiles")
        else:  # a predicted profile without a model is uncalibrated: loadable, not usable for prediction
            check(self.device is not None, "device", None, "a device section for predicted profiles")

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def check_can_predict(self, precision: str) -> None:
        """Raise unless this predicted profile is calibrated and runs ``precision``."""
        device = self.device_model()
        if precision not in device.macs_per_s:
            raise UserError(f"profile {self.tag} cannot run {precision}; allowed: {', '.join(device.macs_per_s)}")

    def device_model(self) -> DeviceModel:
        """The latency model of a predicted profile."""
        if self.device is None:
            raise UserError(f"profile {self.tag} is measured, not predicted; it has no latency model")
        if self.model is None:
            raise UserError(f"profile {self.tag} is not calibrated yet; run hwnas profile calibrate on it")
        return DeviceModel(macs_per_s={p: s.value for p, s in self.device.macs_per_s.items()},
                           bandwidth_gb_s=self.device.bandwidth_gb_s.value, efficiency=dict(self.model.efficiency),
                           bandwidth_efficiency=self.model.bandwidth_efficiency,
                           overhead_ms=dict(self.model.overhead_ms), fuses_activations=self.model.fuses_activations)


def calibrated_predicted_profiles() -> list[HardwareProfile]:
    """Bundled predicted profiles that have a fitted model (the ones every trial is priced on)."""
    profiles = [load_profile(path) for path in bundled_profiles().values()]
    return sorted((p for p in profiles if p.kind == "predicted" and p.model is not None), key=lambda p: p.name)


def bundled_profiles() -> dict[str, Path]:
    root = resources.files("hw_profiles")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def profile_path(name_or_path: str | Path) -> Path:
    """The YAML file of a bundled profile name or a path."""
    path = Path(name_or_path)
    if not path.is_file():
        bundled = bundled_profiles()
        if str(name_or_path) not in bundled:
            raise UserError(f"hardware profile {str(name_or_path)!r} not found; give a YAML path or one of: "
                            f"{', '.join(sorted(bundled))}")
        path = bundled[str(name_or_path)]
    return path


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    """A bundled profile by name (``cpu``) or a profile YAML file by path."""
    path = profile_path(name_or_path)
    try:
        return from_mapping(HardwareProfile, yaml.safe_load(path.read_text()), "")
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
