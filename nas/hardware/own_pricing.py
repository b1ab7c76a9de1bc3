"""Price a user's own model (:mod:`nas.deploy.own_model`) on hardware profiles: the layer table of
its deployed ONNX graph (:mod:`nas.cost.graph`) through the same per-layer pricing, device op
support and host fallback as searched networks (:mod:`nas.hardware.pricing`); measured on this
host (or a remote agent's device) for measured profiles.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import onnx

from nas.cost.graph import GraphModel, graph_costs, graph_model, onnx_layers
from nas.cost.layers import Layer
from nas.deploy.own_model import OwnModel
from nas.hardware.pricing import Price, measure_file, memory_fit, price_predicted
from nas.hardware.profile_build import at_precision
from nas.hardware.profiles import HardwareProfile


@dataclass(frozen=True)
class Table:
    """An own model's deployed graph and its layer table (made once, priced on many profiles)."""

    graph: GraphModel
    layers: list[Layer]


@functools.lru_cache(maxsize=4)
def _table(onnx_bytes: bytes, input_shape: tuple[int, ...]) -> Table:
    graph = graph_model(onnx.load_from_string(onnx_bytes), input_shape[1:])
    return Table(graph, onnx_layers(graph))


def own_table(own: OwnModel) -> Table:
    """The layer table of ``own``'s fp32 graph (raises naming an op it cannot price)."""
    return _table(own.onnx_bytes, own.input_shape)


def price_own(own: OwnModel, profile: HardwareProfile, *, precision: str = "fp32") -> Price:
    """MACs, parameters, memory and latency of ``own`` on ``profile`` at ``precision``."""
    table = own_table(own)
    costs = graph_costs(table.graph, table.layers, precision=precision, params=own.params)
    memory = memory_fit(costs.weight_mb, costs.memory_mb, profile)
    if profile.kind == "predicted":
        return price_predicted(own.name, table.layers, profile, costs, memory)
    how = ""
    onnx_bytes = own.onnx_bytes
    if precision != "fp32":
        onnx_bytes = at_precision(onnx_bytes, own.input_shape, precision)
        how = (" of the static int8 QDQ export (calibrated on random inputs, which latency does not depend on)"
               if precision == "int8" else " of the fp16 export")
    measurement = measure_file(profile, onnx_bytes, own.input_shape)
    return Price(own.name, costs, profile, measurement.median_ms, "measured", measurement.describe() + how, memory)
