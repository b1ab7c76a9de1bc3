"""The layer table of a network as it is deployed (BatchNorm folded): one row per op that a
runtime executes, with its kind, shapes, multiply-adds and the bytes it reads and writes.

This is what per-layer device models price (see ``hw_profiles/``): each kind maps to a handler
there, and a kind a device cannot price is reported by name, never counted as zero.

Kinds: ``conv`` (dense kxk), ``pwconv`` (1x1, groups 1), ``gconv`` (grouped, not depthwise),
``dwconv`` (depthwise), ``linear``, ``add``, ``mul`` (SE gating), ``concat``, ``shuffle``
(channel gather), ``slice``, ``avgpool``, ``maxpool``, ``gap`` (global average pool), ``act``
(activation that a runtime may fuse into the op before it), ``flatten``.

>>> from nas.space.arch import parse
>>> [l.kind for l in layer_table(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"))][:4]
['conv', 'act', 'dwconv', 'act']
"""
from __future__ import annotations

import copy
import dataclasses
import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from nas.cost._trace import trace_with_shapes
from nas.space.arch import ArchSpec
from nas.space.blocks import ChannelShuffle
from nas.space.builder import build, fuse_bn

_ACTS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.SiLU)
_SKIPPED = (nn.Identity,)


@dataclass(frozen=True)
class Layer:
    """One executed op. Element counts are per batch of one; bytes follow from the precision."""

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    macs: int
    weight_elems: int
    in_elems: int
    out_elems: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    inputs: tuple[str, ...] = ()  # names of the layers whose outputs it reads ("input": the network input)
    op: str = ""  # the function, where the kind leaves it open (activations: ReLU, ReLU6, Hardswish, ...)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    shape = getattr(node.meta.get("tensor_meta"), "shape", None)
    return tuple(shape) if shape is not None else None


def _known(shape: tuple[int, ...] | None) -> tuple[int, ...]:
    assert shape is not None  # callers pass nodes already filtered to tensors
    return shape


def _conv_layer(name: str, m: nn.Conv2d, ins: tuple[int, ...], outs: tuple[int, ...]) -> Layer:
    k, s, g = m.kernel_size[0], m.stride[0], m.groups
    if g == m.in_channels and g == m.out_channels and g > 1:
        kind = "dwconv"
    elif g > 1:
        kind = "gconv"
    else:
        kind = "pwconv" if k == 1 else "conv"
    macs = _numel(outs) * (m.in_channels // g) * k * k
    weights = m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
    return Layer(name, kind, ins, outs, macs, weights, _numel(ins), _numel(outs), k, s, g)


def _module_layer(name: str, m: nn.Module, ins: tuple[int, ...], outs: tuple[int, ...]) -> Layer | None:
    if isinstance(m, nn.Conv2d):
        return _conv_layer(name, m, ins, outs)
    if isinstance(m, nn.Linear):
        macs = m.in_features * m.out_features
        return Layer(name, "linear", ins, outs, macs, m.weight.numel() + m.out_features, _numel(ins), _numel(outs))
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (_ACTS, "act"), (ChannelShuffle, "shuffle"), (nn.AdaptiveAvgPool2d, "gap"), (nn.AvgPool2d, "avgpool"),
        (nn.MaxPool2d, "maxpool"), (nn.Flatten, "flatten")]
    for types, kind in kinds:
        if isinstance(m, types):
            k = getattr(m, "kernel_size", 1)
            s = getattr(m, "stride", 1)
            return Layer(name, kind, ins, outs, 0, 0, _numel(ins), _numel(outs), k if isinstance(k, int) else k[0],
                         s if isinstance(s, int) else s[0], op=type(m).__name__ if kind == "act" else "")
    if isinstance(m, _SKIPPED):
        return None
    raise ValueError(f"layer {name!r} of type {type(m).__name__} has no layer kind; the layer table cannot price it")


_FUNCTION_KINDS = {operator.add: "add", torch.add: "add", operator.mul: "mul", torch.mul: "mul",
                   torch.cat: "concat", operator.getitem: "slice", torch.flatten: "flatten"}


def layer_table(spec: ArchSpec, *, model: nn.Module | None = None) -> list[Layer]:
    """Ops of the deployed (BN-folded) network in execution order, batch 1."""
    return module_layers(model if model is not None else build(spec),
                         (1, spec.in_chs, spec.resolution, spec.resolution))


def module_layers(module: nn.Module, input_shape: tuple[int, ...]) -> list[Layer]:
    """Ops of any module built from our blocks (a network, or one block to be timed alone)."""
    fused = fuse_bn(copy.deepcopy(module)).eval()
    graph_module, modules = trace_with_shapes(fused, torch.zeros(input_shape))
    layers: list[Layer] = []
    producer: dict[str, str] = {}  # fx node -> the layer whose output it is (skipped ops pass theirs through)
    for node in graph_module.graph.nodes:
        outs = _shape(node)
        if node.op == "placeholder":
            producer[node.name] = "input"
        if node.op in ("placeholder", "output", "get_attr") or outs is None:
            continue
        inputs = [a for a in node.all_input_nodes if _shape(a) is not None]
        sources = tuple(dict.fromkeys(producer.get(a.name, "input") for a in inputs))
        ins = _known(_shape(inputs[0])) if inputs else outs
        if node.op == "call_module":
            layer = _module_layer(str(node.target), modules[str(node.target)], ins, outs)
        elif node.op == "call_function" and node.target in _FUNCTION_KINDS:
            in_elems = sum(_numel(_known(_shape(a))) for a in inputs)
            layer = Layer(node.name, _FUNCTION_KINDS[node.target], ins, outs, 0, 0, in_elems, _numel(outs))
        elif node.op == "call_method" and node.target in ("flatten", "view", "reshape"):
            layer = Layer(node.name, "flatten", ins, outs, 0, 0, _numel(ins), _numel(outs))
        else:
            raise ValueError(f"op {node.target!r} ({node.op}) has no layer kind; the layer table cannot price it")
        if layer is None:
            producer[node.name] = sources[0] if sources else "input"
        else:
            producer[node.name] = layer.name
            layers.append(dataclasses.replace(layer, inputs=sources))
    return layers
