"""Price a network on hardware profiles without training: the costs of :mod:`nas.cost.costs` plus
latency, saying whether it is measured or predicted and by which profile. ``hwnas cost`` and every
trial of a search predict through the same function, :func:`predict_latency`.

>>> from nas.space.arch import parse
>>> from nas.hardware.profiles import load_profile
>>> p = price(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"), load_profile("cpu"))
>>> p.latency_kind, p.profile.name
('measured', 'cpu')
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from torch import nn

from nas.core.errors import UserError
from nas.core.vocab import BYTES_PER_ELEMENT
from nas.cost.costs import ModelCosts, count_costs
from nas.cost.layers import Layer, layer_table
from nas.deploy.host_latency import LatencyMeasurement, measure_latency
from nas.deploy.remote import RemoteAgent
from nas.hardware.latency_model import BAND, FittedModel, predict
from nas.hardware.plan import PRICED_AS
from nas.hardware.profile_build import at_precision, export_for_timing
from nas.hardware.profiles import HardwareProfile, load_profile
from nas.space.arch import ArchSpec
from nas.space.builder import build


@dataclass(frozen=True)
class PredictedLatency:
    """A profile's prediction: ``ms``, or the ``error`` saying why it could not price the network.
    ``precision`` is set when the profile priced another precision than the one asked for (a
    device calibrated only at that one, such as the ZC706 at fp16)."""

    ms: float | None
    precision: str | None = None
    error: str | None = None
    caveat: str | None = None  # why the number is an extrapolation (see :func:`extrapolation`)
    band_ms: tuple[float, float] | None = None  # 10th-90th percentile of held-out error around ms (None: unmeasured)


@dataclass(frozen=True)
class HostFallback:
    """Layers that run on the host CPU when the device cannot run some (see :func:`host_fallback`)."""

    first: str  # the first layer on the host
    layers: int
    macs_share: float
    transfer_mb: float  # activations crossing between device and host per inference


@dataclass(frozen=True)
class MemoryFit:
    capacity_mb: float | None
    fits: bool | None  # None: the profile states no capacity
    on_chip_mb: float | None = None
    weights_streamed_mb: float | None = None  # weights beyond on-chip memory, streamed each inference


@dataclass(frozen=True)
class Price:
    """What ``hwnas cost`` reports for one network on one profile."""

    arch: str
    costs: ModelCosts
    profile: HardwareProfile
    latency_ms: float | None
    latency_kind: str
    latency_how: str
    memory: MemoryFit
    unsupported_kinds: tuple[str, ...] = ()
    host_fallback: HostFallback | None = None
    band_ms: tuple[float, float] | None = None  # the prediction's 10th-90th percentile of held-out error

    def to_json(self) -> dict[str, object]:
        """The mapping ``hwnas cost --json`` prints."""
        c = self.costs
        out: dict[str, object] = {
            "arch": self.arch, "macs": c.macs, "parameters": c.params, "weight_mb": c.weight_mb,
            "peak_activation_mb": c.peak_activation_mb, "peak_memory_mb": c.memory_mb, "precision": c.precision,
            "profile": self.profile.name, "profile_version": self.profile.version, "latency_ms": self.latency_ms,
            "latency_kind": self.latency_kind, "latency_how": self.latency_how,
            "memory_capacity_mb": self.memory.capacity_mb, "fits_device_memory": self.memory.fits}
        if self.latency_kind == "predicted":
            out["latency_band_ms"] = None if self.band_ms is None else [round(v, 6) for v in self.band_ms]
            out["latency_band"] = band_how(self.profile, self.costs.precision, self.band_ms)
        if self.memory.on_chip_mb is not None:
            out |= {"on_chip_mb": self.memory.on_chip_mb, "weights_streamed_mb": self.memory.weights_streamed_mb}
        if self.unsupported_kinds:
            out["unsupported_kinds"] = list(self.unsupported_kinds)
        if self.host_fallback is not None:
            fallback = asdict(self.host_fallback)
            fallback["from"] = fallback.pop("first")
            out["host_fallback"] = fallback
        return out


def memory_fit(weight_mb: float, memory_mb: float, profile: HardwareProfile) -> MemoryFit:
    """Whether weights + peak activations fit the device's memory, and, on accelerators with
    on-chip parameter memory, how much of the weights it holds (the rest streams each inference)."""
    capacity, on_chip = profile.memory.capacity_mb, profile.memory.on_chip_mb
    return MemoryFit(capacity_mb=capacity, fits=None if capacity is None else memory_mb <= capacity,
                     on_chip_mb=on_chip, weights_streamed_mb=None if on_chip is None else max(0.0, weight_mb - on_chip))


def host_layer_names(layers: list[Layer], supported: tuple[str, ...], fallback: str) -> list[str]:
    """Names of the layers that run on the host: from the first unsupported one on ("rest"), or
    only the unsupported ones ("ops"); none when the device has no fallback."""
    if fallback == "none":
        return []
    first = next((i for i, l in enumerate(layers) if l.kind not in supported), len(layers))
    return [l.name for i, l in enumerate(layers) if (i >= first if fallback == "rest" else l.kind not in supported)]


def host_fallback(layers: list[Layer], supported: tuple[str, ...], fallback: str,
                  precision: str) -> HostFallback | None:
    """Which layers of an execution-ordered table run on the host CPU when the device cannot run
    some (``fallback`` "rest": the first such layer and everything after it; "ops": only those
    layers), their share of the MACs, and the activations crossing between device and host per
    inference. None when every layer runs on the device or the device has no fallback."""
    if fallback == "none" or all(l.kind in supported for l in layers):
        return None
    host = set(host_layer_names(layers, supported, fallback))
    on_host = [l for l in layers if l.name in host]
    first = next(i for i, l in enumerate(layers) if l.name in host)
    sizes = {l.name: l.out_elems for l in layers}
    # tensors made on one side and read on the other, each sent once (the network's own input and
    # output travel anyway)
    crossing = {i for l in layers for i in l.inputs if i in sizes and (i in host) != (l.name in host)}
    total = sum(l.macs for l in layers) or 1
    return HostFallback(first=layers[first].name, layers=len(on_host),
                        macs_share=sum(l.macs for l in on_host) / total,
                        transfer_mb=sum(sizes[i] for i in crossing) * BYTES_PER_ELEMENT[precision] / 1e6)


def predict_latency(layers: list[Layer], profile: HardwareProfile, precision: str, *,
                    other_precision_ok: bool = False) -> PredictedLatency:
    """The predicted latency of a layer table on a predicted profile, or why it has none (a
    precision or op kind the device cannot run, or no fitted model). With ``other_precision_ok``
    a profile not calibrated at ``precision`` is priced at the precision it is calibrated for.
    Layers the device cannot run are priced on its fallback profile (the host CPU), plus the
    activations crossing the host link, where the profile names one (:func:`split_price`)."""
    at = precision
    if other_precision_ok and profile.model and precision not in profile.model:
        at = next(iter(profile.model))
    try:
        split = split_price(layers, profile, at)
        ms = split.total_ms if split else predict(layers, profile.device_model(at), precision=at,
                                                   where=f"profile {profile.tag}").total_ms
    except UserError as exc:
        return PredictedLatency(ms=None, precision=None if at == precision else at, error=str(exc))
    fitted = (profile.model or {}).get(at)
    caveat = extrapolation(layers, fitted)
    floor = profile.device.min_latency_ms if profile.device is not None else None
    if floor is not None and ms < floor.value:
        ms = floor.value
        caveat = (f"{caveat}; " if caveat else "") + (f"raised to the device's per-invocation floor of {floor.value:g} ms "
                                                      f"({floor.source})")
    return PredictedLatency(ms=ms, precision=None if at == precision else at, caveat=caveat,
                            band_ms=fitted.band(ms) if fitted is not None else None)


def extrapolation(layers: list[Layer], fitted: FittedModel | None) -> str | None:
    """Why a prediction lies outside what the model was fitted on: layer kinds no calibration
    network had, or MACs more than 2x outside the calibration networks' range; None when inside."""
    if fitted is None:
        return None
    notes = []
    proxied = sorted({l.kind for l in layers} & set(PRICED_AS))
    if proxied:
        notes.append("no calibration network had " + ", ".join(proxied) + " ops, so they are priced by the terms of "
                     + ", ".join(sorted({PRICED_AS[k] for k in proxied})) + " ops (" + ", ".join(
                         f"{k} as {PRICED_AS[k]}" for k in proxied) + ")")
    unseen = sorted({l.kind for l in layers if l.macs} & set(fitted.unfitted_kinds))
    if unseen:
        notes.append(f"no calibration network of this profile had {', '.join(unseen)} layers, so they are priced "
                     f"by the shared per-MAC and per-byte terms only")
    mmac = sum(l.macs for l in layers) / 1e6
    if fitted.mmac_range and not fitted.mmac_range[0] / 2 <= mmac <= 2 * fitted.mmac_range[1]:
        lo, hi = fitted.mmac_range
        notes.append(f"{mmac:.3g}M MACs is outside the calibration networks' {lo:.3g}M-{hi:.3g}M (more than 2x "
                     f"beyond), where fixed per-inference costs the data could not pin down dominate")
    return "EXTRAPOLATED: " + "; ".join(notes) if notes else None


@dataclass(frozen=True)
class SplitPrice:
    """A network split between a device and the host CPU it falls back to."""

    device_ms: float
    host_ms: float
    link_ms: float
    host_tag: str
    host_precision: str

    @property
    def total_ms(self) -> float:
        return self.device_ms + self.host_ms + self.link_ms


@functools.lru_cache(maxsize=8)
def _fallback_profile(name: str) -> HardwareProfile:
    """A fallback profile, read once per process: every trial of a search prices on it."""
    return load_profile(name)


def split_price(layers: list[Layer], profile: HardwareProfile, precision: str) -> SplitPrice | None:
    """Price a network some of whose layers the device cannot run: the device's part on its own
    model, the host's part on ``device.fallback_profile`` (at the same precision where that
    profile is calibrated for it), and the activations crossing between them at the device
    model's time per MB of host I/O (the link's datasheet bandwidth where the fit has none). None
    when every layer runs on the device or the profile names no fallback profile (then the device
    model refuses the kinds by name)."""
    device = profile.device
    if device is None or not device.fallback_profile:
        return None
    fallback = host_fallback(layers, device.supported_kinds, device.fallback, precision)
    if fallback is None:
        return None
    on_host = set(host_layer_names(layers, device.supported_kinds, device.fallback))
    model = profile.device_model(precision)
    mine = [l for l in layers if l.name not in on_host]
    device_ms = predict(mine, model, precision=precision, where=f"profile {profile.tag}").total_ms if mine else 0.0
    host = _fallback_profile(device.fallback_profile)
    calibrated = list(host.model or ())
    host_precision = precision if precision in calibrated or not calibrated else calibrated[0]
    host_ms = predict([l for l in layers if l.name in on_host], host.device_model(host_precision),
                      precision=host_precision, where=f"fallback profile {host.tag}").total_ms
    # the fitted time per MB of host I/O, else the link's datasheet bandwidth (1 MB at B GB/s: 1/B ms)
    ms_per_mb = model.fitted.io_ms_per_mb or 1.0 / device.bandwidth_gb_s.value
    return SplitPrice(device_ms, host_ms, fallback.transfer_mb * ms_per_mb, host.tag, host_precision)


def predict_on_profiles(spec: ArchSpec, model: nn.Module, profiles: Sequence[HardwareProfile], *, precision: str,
                        target: HardwareProfile | None = None) -> dict[str, PredictedLatency]:
    """Each profile's prediction for ``model`` (a network of ``spec``, perhaps pruned); profiles
    other than ``target`` may price at the precision they are calibrated for, and say so."""
    layers = layer_table(spec, model=model)
    return {p.name: predict_latency(layers, p, precision, other_precision_ok=p is not target) for p in profiles}


def measure_on_host(spec: ArchSpec, profile: HardwareProfile, onnx_bytes: bytes) -> LatencyMeasurement:
    """Latency of an exported model under a measured profile's conditions (on this host), or on
    the device a remote profile's agent runs on."""
    return measure_file(profile, onnx_bytes, (1, spec.in_chs, spec.resolution, spec.resolution))


def measure_file(profile: HardwareProfile, onnx_bytes: bytes, input_shape: tuple[int, ...]) -> LatencyMeasurement:
    """:func:`measure_on_host` for any ONNX file with one input of ``input_shape``."""
    if profile.remote is not None:
        r = profile.remote
        return RemoteAgent.from_env(r.url, r.token_env, ride_out_s=r.ride_out_s).measure(
            onnx_bytes, runtime=r.runtime, threads=r.threads, warmup=r.warmup, repeats=r.repeats)
    lat = profile.latency
    if lat is None:
        raise UserError(f"profile {profile.tag} is predicted; host measurements need a measured profile such as cpu")
    return measure_latency(onnx_bytes, input_shape, threads=lat.threads, warmup=lat.warmup, repeats=lat.repeats)


def _unsupported_reason(profile: HardwareProfile, unsupported: list[str], fallback: HostFallback | None) -> str:
    assert profile.device is not None
    where = ("the network cannot run there" if fallback is None else
             f"{fallback.layers} layers ({100 * fallback.macs_share:.0f}% of MACs) would run on the host CPU from "
             f"{fallback.first}, {fallback.transfer_mb:.3f} MB crossing per inference, and that split is not priced")
    return (f"{', '.join(unsupported)} cannot run on {profile.name} "
            f"({profile.device.unsupported_note or 'see the profile'}); {where}")


def price_predicted(label: str, layers: list[Layer], profile: HardwareProfile, costs: ModelCosts,
                    memory: MemoryFit) -> Price:
    """The :class:`Price` of a layer table on a predicted profile (``label``: what it is of)."""
    assert profile.device is not None
    unsupported = sorted({l.kind for l in layers} - set(profile.device.supported_kinds))
    fallback = host_fallback(layers, profile.device.supported_kinds, profile.device.fallback, costs.precision)
    base = Price(label, costs, profile, None, "predicted", "", memory, tuple(unsupported), fallback)
    if unsupported and not (fallback and profile.device.fallback_profile):
        return _with(base, how=f"not predicted: {_unsupported_reason(profile, unsupported, fallback)}")
    prediction = predict_latency(layers, profile, costs.precision)
    if prediction.ms is None:
        return _with(base, how=f"not predicted: {prediction.error}")
    how = profile.predicted_how()
    split = split_price(layers, profile, costs.precision) if unsupported else None
    if split is not None and fallback is not None:
        how += (f"; {', '.join(unsupported)} cannot run on {profile.name}: {split.device_ms:.3g} ms on the device, "
                f"{fallback.layers} layers from {fallback.first} ({100 * fallback.macs_share:.0f}% of MACs) "
                f"{split.host_ms:.3g} ms on the host CPU priced by profile {split.host_tag} at "
                f"{split.host_precision} ({profile.device.fallback_note or 'a stand-in for the host'}), "
                f"{fallback.transfer_mb:.3f} MB crossing the host link {split.link_ms:.3g} ms")
    if prediction.caveat:
        how += f"; {prediction.caveat}"
    return _with(base, ms=prediction.ms, how=how, band=prediction.band_ms)


def _with(price_: Price, *, how: str, ms: float | None = None, band: tuple[float, float] | None = None) -> Price:
    return Price(price_.arch, price_.costs, price_.profile, ms, price_.latency_kind, how, price_.memory,
                 price_.unsupported_kinds, price_.host_fallback, band)


def band_how(profile: HardwareProfile, precision: str, band: tuple[float, float] | None) -> str:
    """What a prediction's interval is, or why it has none."""
    fitted = (profile.model or {}).get(precision)
    if band is None or fitted is None:
        return (f"no interval: profile {profile.tag} has no held-out error at {precision} (its fit was scored per "
                "block or not at all)")
    return (f"{round(100 * BAND[0])}th-{round(100 * BAND[1])}th percentile of held-out error ({fitted.held_out_how}; "
            f"{len(fitted.held_out_ratios)} networks)")


def price(spec: ArchSpec, profile: HardwareProfile, *, precision: str = "fp32") -> Price:
    """MACs, parameters, memory and latency of ``spec``: predicted by the per-layer model of a
    predicted profile; measured on this host for a measured (``cpu``) profile, at int8 and fp16
    on a quantized or converted export; a latency of None comes with the reason."""
    model = build(spec).eval()
    costs = count_costs(spec, precision=precision, model=model)
    memory = memory_fit(costs.weight_mb, costs.memory_mb, profile)
    if profile.kind == "predicted":
        return price_predicted(spec.format(), layer_table(spec, model=model), profile, costs, memory)
    shape = (1, spec.in_chs, spec.resolution, spec.resolution)
    onnx_bytes = export_for_timing(model, shape, spec.format())
    how = ""
    if precision != "fp32":
        onnx_bytes = at_precision(onnx_bytes, shape, precision)
        how = (" of the static int8 QDQ export (calibrated on random inputs, which latency does not depend on)"
               if precision == "int8" else " of the fp16 export")
    measurement = measure_on_host(spec, profile, onnx_bytes)
    return Price(spec.format(), costs, profile, measurement.median_ms, "measured", measurement.describe() + how,
                 memory)
