"""Where a search's latency comes from, chosen once when the search starts: measured on this host
(a measured profile such as ``cpu``) or predicted by a predicted profile's per-layer model.

Whatever the source, every exported file is also timed on this host (under :attr:`host`'s
conditions), so a trial always has a measured figure beside any prediction.

>>> from nas.hardware.profiles import load_profile
>>> latency_source(load_profile("cpu")).kind
'measured'
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from nas.core.errors import UserError
from nas.deploy.host_latency import LatencyMeasurement
from nas.hardware.pricing import PredictedLatency, measure_on_host
from nas.hardware.profiles import HardwareProfile, load_profile
from nas.space.arch import ArchSpec


class LatencySource(Protocol):
    """The latency a search optimises and gates on."""

    @property
    def kind(self) -> str: ...  # "measured" or "predicted"

    @property
    def profile(self) -> HardwareProfile: ...  # the search's target

    @property
    def host(self) -> HardwareProfile: ...  # the measured profile whose conditions time files here

    def before_training(self, predicted: Mapping[str, PredictedLatency],
                        measure_untrained: Callable[[], float] | None) -> float | None:
        """The latency to gate on before training (``measure_untrained`` is given when a budget
        needs it), or None."""
        ...

    def of_artifact(self, predicted: Mapping[str, PredictedLatency], host: LatencyMeasurement) -> float:
        """The latency of the exported file: its host measurement or the target's prediction."""
        ...

    def how(self, host: LatencyMeasurement) -> str: ...

    @property
    def budget_ratio(self) -> float: ...  # budgets hold latency x this (search.budget_quantile; 1: the point)

    def on_device(self, onnx_bytes: bytes, spec: ArchSpec) -> LatencyMeasurement | None:
        """The file measured on the target device by its agent (a remote profile), else None."""
        ...


@dataclass(frozen=True)
class MeasuredOnHost:
    """Latency measured on this host with onnxruntime, under the profile's conditions."""

    profile: HardwareProfile
    kind: str = "measured"
    budget_ratio: float = 1.0  # a measurement has no model error to allow for

    @property
    def host(self) -> HardwareProfile:
        return self.profile

    def before_training(self, predicted: Mapping[str, PredictedLatency],
                        measure_untrained: Callable[[], float] | None) -> float | None:
        # dense fp32 latency does not depend on the weights: the untrained export times the same
        return None if measure_untrained is None else measure_untrained()

    def of_artifact(self, predicted: Mapping[str, PredictedLatency], host: LatencyMeasurement) -> float:
        return host.median_ms

    def how(self, host: LatencyMeasurement) -> str:
        return host.describe()

    def on_device(self, onnx_bytes: bytes, spec: ArchSpec) -> LatencyMeasurement | None:
        return None


@dataclass(frozen=True)
class MeasuredOnDevice(MeasuredOnHost):
    """Latency measured on the user's device by the agent a remote profile names; files are timed
    on ``host`` (this machine) too, as with every source."""

    host_profile: HardwareProfile | None = None

    @property
    def host(self) -> HardwareProfile:
        assert self.host_profile is not None
        return self.host_profile

    def on_device(self, onnx_bytes: bytes, spec: ArchSpec) -> LatencyMeasurement | None:
        return measure_on_host(spec, self.profile, onnx_bytes)


@dataclass(frozen=True)
class PredictedByProfile:
    """Latency predicted by the target profile's per-layer model; files are timed on ``host`` too."""

    profile: HardwareProfile
    host: HardwareProfile
    kind: str = "predicted"
    budget_ratio: float = 1.0

    def before_training(self, predicted: Mapping[str, PredictedLatency],
                        measure_untrained: Callable[[], float] | None) -> float | None:
        return self._pick(predicted)

    def of_artifact(self, predicted: Mapping[str, PredictedLatency], host: LatencyMeasurement) -> float:
        return self._pick(predicted)

    def how(self, host: LatencyMeasurement) -> str:
        return self.profile.predicted_how()

    def on_device(self, onnx_bytes: bytes, spec: ArchSpec) -> LatencyMeasurement | None:
        return None

    def _pick(self, predicted: Mapping[str, PredictedLatency]) -> float:
        mine = predicted.get(self.profile.name)
        if mine is None or mine.ms is None:  # e.g. an op kind the target cannot run, named in the error
            raise UserError(mine.error if mine is not None and mine.error else
                            f"profile {self.profile.tag} cannot price this network")
        return mine.ms


def latency_source(profile: HardwareProfile, *, precision: str = "fp32",
                   budget_quantile: float | None = None) -> LatencySource:
    """The source for a search targeting ``profile``; a predicted profile must be able to predict
    ``precision`` (a one-line error names what it lacks). ``budget_quantile``: budgets hold that
    quantile of the profile's held-out error around each prediction, not the point."""
    if profile.kind == "remote":  # measured on the user's device by its agent
        return MeasuredOnDevice(profile, host_profile=load_profile("cpu"))
    if profile.kind == "measured":
        return MeasuredOnHost(profile)
    profile.check_can_predict(precision)
    ratio = 1.0
    if budget_quantile is not None:
        fitted = (profile.model or {}).get(precision)
        at = fitted.ratio_at(budget_quantile) if fitted is not None else None
        if at is None:
            raise UserError(f"search.budget_quantile {budget_quantile:g} needs a held-out error on the target; profile "
                            f"{profile.tag} has none at {precision}; allowed: null, or a profile calibrated with "
                            "hwnas profile calibrate --networks")
        ratio = at
    return PredictedByProfile(profile, host=load_profile("cpu"), budget_ratio=ratio)
