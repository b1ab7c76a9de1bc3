"""Price one architecture on one hardware profile without training: the costs of
:mod:`nas.cost.costs` plus latency, saying whether it is measured or predicted and by which profile.

>>> from nas.space.arch import parse
>>> from nas.hardware.profiles import load_profile
>>> report = price(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"), load_profile("cpu"))
>>> report["latency_kind"], report["profile"]
('measured', 'cpu')
"""
from __future__ import annotations

from nas.space.arch import ArchSpec
from nas.space.builder import build
from nas.cost.costs import BYTES_PER_ELEMENT, count_costs
from nas.core.errors import UserError
from nas.deploy.host_latency import LatencyMeasurement, measure_latency
from nas.hardware.latency_model import predict
from nas.cost.layers import Layer, layer_table
from nas.hardware.profiles import HardwareProfile


def memory_check(weight_mb: float, memory_mb: float, profile: HardwareProfile) -> dict[str, object]:
    """Whether weights + peak activations fit the device's memory, and, on accelerators with
    on-chip parameter memory, how much of the weights it holds (the rest streams each inference)."""
    out: dict[str, object] = {"memory_capacity_mb": profile.memory.capacity_mb,
                              "fits_device_memory": None if profile.memory.capacity_mb is None
                              else memory_mb <= profile.memory.capacity_mb}
    if profile.memory.on_chip_mb is not None:
        out["on_chip_mb"] = profile.memory.on_chip_mb
        out["weights_streamed_mb"] = max(0.0, weight_mb - profile.memory.on_chip_mb)
    return out


def host_fallback(layers: list[Layer], supported: tuple[str, ...], fallback: str,
                  precision: str) -> dict[str, object] | None:
    """Which layers of an execution-ordered table run on the host CPU when the device cannot run
    some (``fallback`` "rest": the first such layer and everything after it; "ops": only those
    layers), their share of the MACs, and the activations crossing between device and host per
    inference. None when every layer runs on the device or the device has no fallback."""
    if fallback == "none" or all(l.kind in supported for l in layers):
        return None
    first = next(i for i, l in enumerate(layers) if l.kind not in supported)
    on_host = layers[first:] if fallback == "rest" else [l for l in layers if l.kind not in supported]
    host = {l.name for l in on_host}
    sizes = {l.name: l.out_elems for l in layers}
    # tensors made on one side and read on the other, each sent once (the network's own input and
    # output travel anyway)
    crossing = {i for l in layers for i in l.inputs if i in sizes and (i in host) != (l.name in host)}
    total = sum(l.macs for l in layers) or 1
    return {"from": layers[first].name, "layers": len(on_host), "macs_share": sum(l.macs for l in on_host) / total,
            "transfer_mb": sum(sizes[i] for i in crossing) * BYTES_PER_ELEMENT[precision] / 1e6}


def measure_on_host(spec: ArchSpec, profile: HardwareProfile, onnx_bytes: bytes) -> LatencyMeasurement:
    """Latency of an exported model under the profile's measurement conditions."""
    lat = profile.latency
    return measure_latency(onnx_bytes, (1, spec.in_chs, spec.resolution, spec.resolution), threads=lat.threads,
                           warmup=lat.warmup, repeats=lat.repeats)


def price(spec: ArchSpec, profile: HardwareProfile, *, precision: str = "fp32") -> dict[str, object]:
    """MACs, parameters, memory and latency of ``spec``: predicted by the per-layer model of a
    predicted profile; measured on this host for the measured (``cpu``) profile at fp32, and None
    with a reason where it cannot be measured."""
    model = build(spec).eval()
    costs = count_costs(spec, precision=precision, model=model)
    report: dict[str, object] = {
        "arch": spec.format(), "macs": costs.macs, "parameters": costs.params, "weight_mb": costs.weight_mb,
        "peak_activation_mb": costs.peak_activation_mb, "peak_memory_mb": costs.memory_mb, "precision": precision,
        "profile": profile.name, "profile_version": profile.version, "latency_ms": None,
        "latency_kind": "measured", "latency_how": None}
    report.update(memory_check(costs.weight_mb, costs.memory_mb, profile))
    if profile.kind == "predicted":
        assert profile.device is not None
        layers = layer_table(spec, model=model)
        unsupported = sorted({l.kind for l in layers} - set(profile.device.supported_kinds))
        if unsupported:
            report["unsupported_kinds"] = unsupported
        fallback = host_fallback(layers, profile.device.supported_kinds, profile.device.fallback, precision)
        if fallback is not None:
            report["host_fallback"] = fallback
        reason = ""
        if unsupported:
            where = ("the network cannot run there" if fallback is None else
                     f"{fallback['layers']} layers ({100 * fallback['macs_share']:.0f}% of MACs) would run on the "
                     f"host CPU from {fallback['from']}, {fallback['transfer_mb']:.3f} MB crossing per inference, "
                     f"and that split is not priced")
            reason = (f"{', '.join(unsupported)} cannot run on {profile.name} "
                      f"({profile.device.unsupported_note or 'see the profile'}); {where}")
        else:
            try:  # the reason it cannot: a precision the device lacks, or no fitted model for it
                profile.check_can_predict(precision)
            except UserError as exc:
                reason = str(exc)
        if reason:
            report.update(latency_kind="predicted", latency_how=f"not predicted: {reason}")
            return report
        prediction = predict(layer_table(spec, model=model), profile.device_model(precision), precision=precision,
                             where=f"profile {profile.tag}")
        report.update(latency_ms=prediction.total_ms, latency_kind="predicted",
                      latency_how=f"predicted by the per-layer model of profile {profile.tag}")
        return report
    from nas.hardware.profile_build import at_precision, export_for_timing

    shape = (1, spec.in_chs, spec.resolution, spec.resolution)
    onnx_bytes = export_for_timing(model, shape, spec.format())
    how = ""
    if precision != "fp32":
        onnx_bytes = at_precision(onnx_bytes, shape, precision)
        how = (" of the static int8 QDQ export (calibrated on random inputs, which latency does not depend on)"
               if precision == "int8" else " of the fp16 export")
    measurement = measure_on_host(spec, profile, onnx_bytes)
    report.update(latency_ms=measurement.median_ms, latency_how=measurement.describe() + how)
    return report
