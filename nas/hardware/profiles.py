"""Hardware profiles (``hw_profiles/*.yaml``): versioned, validated, with provenance.

Two kinds: ``measured``, a host whose latency hwnas measures itself with onnxruntime (``cpu``), and
``predicted``, a device priced by the per-layer model of :mod:`nas.hardware.latency_model` from datasheet
numbers (each with its source) and fitted efficiencies and overheads (with how they were fitted).

>>> load_profile("cpu").latency.threads
1
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from nas.core.errors import UserError
from nas.core.schema import check, check_choices, from_mapping, load_yaml
from nas.core.vocab import LATENCY_KINDS, PRECISIONS
from nas.deploy.artifacts import kinds
from nas.hardware.latency_model import DeviceModel, FittedModel
from nas.hardware.plan import ALL_KINDS

PROFILE_KINDS = (*LATENCY_KINDS, "remote")  # remote: measured on the user's device by hwnas's agent
# Where ops the device cannot run go: nowhere (the network cannot run), or the host CPU: "rest" from
# the first such op on (the Edge TPU compiler maps one subgraph, up to the first op it cannot),
# "ops" only those ops, the device resuming after each (a Vitis AI DPU's partitioned subgraphs).
FALLBACKS = ("none", "rest", "ops")


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
class RemoteSpec:
    """Where a remote profile's agent listens (nas.deploy.device_agent) and how it times files."""

    url: str
    token_env: str = "HWNAS_AGENT_TOKEN"  # the environment variable holding the agent's token
    runtime: str = "onnxruntime"  # the runtime the agent times the search's ONNX files with
    threads: int = 1
    warmup: int = 10
    repeats: int = 50
    ride_out_s: float = 120.0  # how long an unreachable agent (restarting) is waited for before a trial fails

    def __post_init__(self) -> None:
        check(self.url.startswith(("http://", "https://")), "remote.url", self.url, "an http:// or https:// URL")
        check(self.runtime == "onnxruntime", "remote.runtime", self.runtime,
              "onnxruntime (the files a search times; the agent also runs LiteRT for hwnas device measure)")
        check(1 <= self.threads <= 64, "remote.threads", self.threads, "integers from 1 to 64")
        check(self.repeats >= 3, "remote.repeats", self.repeats, "integers >= 3")
        check(self.ride_out_s >= 0, "remote.ride_out_s", self.ride_out_s, "numbers >= 0")


@dataclass(frozen=True)
class MemorySpec:
    capacity_mb: float | None = None  # weights + peak activations must fit in this
    provenance: str = ""
    on_chip_mb: float | None = None  # parameter memory on the accelerator; beyond it weights stream from outside


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
    supported_kinds: tuple[str, ...] = ALL_KINDS  # op kinds the device runs; the rest fall back or fail
    unsupported_note: str = ""  # why, with a source
    fallback: str = "none"  # where unsupported ops run (FALLBACKS)
    fallback_profile: str = ""  # the bundled profile that prices the ops run on the host CPU
    fallback_note: str = ""  # what that host is and why that profile stands in for it
    # the least time any invocation takes (runtime call, driver, link round trip), from published
    # timings of tiny networks: predictions below it are raised to it (a fit to large networks
    # cannot pin a per-inference term, and would price tiny networks below what the device does)
    min_latency_ms: Sourced | None = None

    def __post_init__(self) -> None:
        check_choices(self.macs_per_s, "device.macs_per_s", PRECISIONS)
        check_choices(self.supported_kinds, "device.supported_kinds", ALL_KINDS)
        check(self.fallback in FALLBACKS, "device.fallback", self.fallback, ", ".join(FALLBACKS))
        check(not self.fallback_profile or self.fallback != "none", "device.fallback_profile", self.fallback_profile,
              "empty when device.fallback is none")


@dataclass(frozen=True)
class Conditions:
    """What a predicted profile's numbers hold for: the same network differs 2-5x across runtimes
    on one device, so a latency means nothing without the runtime and how it was run."""

    runtime: str  # short key; the runtime column of hwnas profile calibrate --networks rows must match it
    runtime_version: str  # the runtime and its version, as the sources state them
    threads: str  # CPU threads as the sources state them, or "not stated"
    batch: int = 1
    clock: str = ""  # clock or power mode, where known
    host_io: bool = False  # input and output cross a host link (USB, PCIe) or host-side pre-processing
    gpu_terms: bool = False  # a GPU runtime (TensorRT): fit a time per op and per MB of depthwise activations
    timing: str = ""  # what the figures include (model execution only, end to end...)
    source: str = ""  # where the measurements the model is fitted to come from

    def __post_init__(self) -> None:
        check(bool(self.runtime.strip()), "conditions.runtime", self.runtime, "a non-empty runtime key")
        check(bool(self.runtime_version.strip()), "conditions.runtime_version", self.runtime_version,
              "the runtime and its version, or 'version not stated'")
        check(self.batch >= 1, "conditions.batch", self.batch, "integers >= 1")

    def describe(self) -> str:
        parts = [self.runtime_version, f"threads {self.threads}", f"batch {self.batch}"]
        return ", ".join(parts + [p for p in (self.clock, self.timing) if p])


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    version: str
    kind: str
    description: str
    provenance: str
    latency: MeasuredLatency | None = None  # measured profiles
    device: DeviceSpec | None = None  # predicted profiles
    model: dict[str, FittedModel] | None = None  # predicted profiles: fitted model by precision
    memory: MemorySpec = field(default_factory=MemorySpec)
    conditions: Conditions | None = None  # predicted profiles: the runtime and conditions the model holds for
    artifacts: tuple[str, ...] = ("onnx",)  # the files a search exports by default (nas.deploy.artifacts)
    remote: RemoteSpec | None = None  # remote profiles: the agent on the device

    def __post_init__(self) -> None:
        kinds(self.artifacts)  # one line naming the allowed kinds
        check(self.kind in PROFILE_KINDS, "kind", self.kind, ", ".join(PROFILE_KINDS))
        check(bool(self.version), "version", self.version, "a non-empty version string")
        if self.kind == "measured":
            check(self.latency is not None, "latency", None, "a latency section for measured profiles")
        elif self.kind == "remote":
            check(self.remote is not None, "remote", None, "a remote section (url, token_env) for remote profiles")
        else:  # a predicted profile without a model is uncalibrated: loadable, not usable for prediction
            check(self.device is not None, "device", None, "a device section for predicted profiles")
            if self.model is not None and self.device is not None:
                check_choices(self.model, "model", tuple(self.device.macs_per_s))
                for precision, fitted in self.model.items():
                    check(bool(fitted.fit.strip()), f"model.{precision}.fit", fitted.fit,
                          "a note saying how the model was fitted (method, data, date, error)")

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def describe_conditions(self) -> str:
        """The runtime and conditions a predicted profile's numbers hold for."""
        return self.conditions.describe() if self.conditions else "runtime and conditions not stated"

    def predicted_how(self) -> str:
        """The latency_how of this profile's predictions: model, profile version, runtime, conditions."""
        return f"predicted by the per-layer model of profile {self.tag} ({self.describe_conditions()})"

    def check_can_predict(self, precision: str) -> None:
        """Raise unless this predicted profile runs ``precision`` and is calibrated for it."""
        self.device_model(precision)

    def device_model(self, precision: str = "fp32") -> DeviceModel:
        """The latency model of a predicted profile at ``precision``."""
        if self.device is None:
            raise UserError(f"profile {self.tag} is measured, not predicted; it has no latency model")
        if precision not in self.device.macs_per_s:
            raise UserError(f"profile {self.tag} cannot run {precision}; allowed: "
                            f"{', '.join(self.device.macs_per_s)}")
        if not self.model:
            raise UserError(f"profile {self.tag} is not calibrated yet; run hwnas profile calibrate on it")
        if precision not in self.model:
            raise UserError(f"profile {self.tag} is not calibrated for {precision}; calibrated: "
                            f"{', '.join(self.model)}")
        return self.model[precision].on(macs_per_s={precision: self.device.macs_per_s[precision].value},
                                         bandwidth_gb_s=self.device.bandwidth_gb_s.value,
                                         supported_kinds=self.device.supported_kinds)


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
    raw = load_yaml(path)
    try:
        return from_mapping(HardwareProfile, _upgrade(raw), "")
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def _upgrade(raw: object) -> object:
    """Read profiles written by earlier versions: linear terms as a pair [ms per million MACs,
    ms per MB] (before the units were named) become {mmac, mb}."""
    models = raw.get("model") if isinstance(raw, dict) else None
    if not isinstance(models, dict):
        return raw
    for model in models.values():
        terms = model.get("linear_terms") if isinstance(model, dict) else None
        if not isinstance(terms, dict):
            continue
        for key, value in terms.items():
            if isinstance(value, list) and len(value) == 2:
                terms[key] = {"mmac": value[0], "mb": value[1]}
    return raw
