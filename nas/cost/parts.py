"""The costs of :func:`nas.cost.costs.count_costs`, for many architectures of one space, fast.

A network of the grammar is a chain: stem, blocks, then the tail (head conv, pooling, classifier).
No tensor made in one part is read after the next part's first op, so MACs, parameters and
weights are sums over the parts and the peak of live activations is the largest peak of any part
(each part's own peak counts its input and output, as the whole network's does). A part's costs
depend only on its own settings, its input channels and its input's spatial size (given by the
resolution, the stem and the strides before it), so they are counted once (on the ordinary
network, BatchNorm folded, by :mod:`nas.cost.costs`'s conventions) and looked up afterwards.
Drawing thousands of subnetworks under a MAC budget (supernet training) costs microseconds each
instead of the 80-90 ms of a full count; the result equals ``count_costs`` exactly
(``tests/nas/cost/test_parts.py`` checks random architectures).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
from fvcore.nn import parameter_count
from torch import nn

from nas.core.errors import UserError
from nas.core.vocab import BYTES_PER_ELEMENT
from nas.cost.costs import ModelCosts, count_macs, peak_activation_elements
from nas.space.arch import ArchSpec
from nas.space.builder import Net, build, fuse_bn


@dataclass(frozen=True)
class _Part:
    macs: int
    params: int
    weight_elems: int
    peak_elems: int


def _keys(spec: ArchSpec) -> list[tuple[object, ...]]:
    """One key per part (stem, each block, tail), naming everything its costs depend on."""
    text = spec.format().split("-")
    stem = (spec.in_chs, spec.resolution, text[1])
    keys: list[tuple[object, ...]] = [("stem", *stem)]
    strides: tuple[int, ...] = ()
    in_chs = spec.stem_chs
    for stage in spec.stages:
        for j in range(stage.repeats):
            stride = stage.stride if j == 0 else 1
            block = dataclasses.replace(stage, repeats=1, stride=stride).format()
            keys.append(("block", *stem, strides, in_chs, block))
            in_chs, strides = stage.out_chs, (*strides, stride)
    keys.append(("tail", *stem, strides, in_chs, *text[1 + len(spec.stages) + 1:]))
    return keys


class _Tail(nn.Module):
    """What :class:`nas.space.builder.Net` runs after its last block (its forward, from ``head``)."""

    def __init__(self, net: Net) -> None:
        super().__init__()
        self.conv_classifier = net.spec.conv_classifier
        self.head, self.pool, self.hidden, self.classifier = net.head, net.pool, net.hidden, net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        if self.conv_classifier:
            return torch.flatten(self.pool(self.classifier(x)), 1)
        return self.classifier(self.hidden(torch.flatten(self.pool(x), 1)))


class PartCosts:
    """``costs(spec)`` equal to ``count_costs(spec, precision=...)``, parts counted once each."""

    def __init__(self, precision: str = "fp32") -> None:
        if precision not in BYTES_PER_ELEMENT:
            raise UserError(f"precision {precision!r} not allowed; allowed: {', '.join(BYTES_PER_ELEMENT)}")
        self.precision = precision
        self._parts: dict[tuple[object, ...], _Part] = {}
        self.counted = 0  # networks built to count a part not seen before

    def costs(self, spec: ArchSpec) -> ModelCosts:
        keys = _keys(spec)
        if any(k not in self._parts for k in keys):
            self._count(spec, keys)
        parts = [self._parts[k] for k in keys]
        nbytes = BYTES_PER_ELEMENT[self.precision]
        return ModelCosts(macs=sum(p.macs for p in parts), params=sum(p.params for p in parts),
                          weight_mb=sum(p.weight_elems for p in parts) * nbytes / 1e6,
                          peak_activation_mb=max(p.peak_elems for p in parts) * nbytes / 1e6,
                          precision=self.precision)

    @torch.no_grad()
    def _count(self, spec: ArchSpec, keys: list[tuple[object, ...]]) -> None:
        self.counted += 1
        model = build(spec).eval()
        fused = fuse_bn(copy.deepcopy(model))
        assert isinstance(model, Net) and isinstance(fused, Net)
        pairs: list[tuple[nn.Module, nn.Module]] = [(model.stem, fused.stem)]
        pairs += list(zip(model.blocks, fused.blocks))
        pairs.append((_Tail(model), _Tail(fused)))
        x = torch.zeros(1, spec.in_chs, spec.resolution, spec.resolution)
        for key, (plain, folded) in zip(keys, pairs):
            if key not in self._parts:
                self._parts[key] = _Part(macs=count_macs(plain, x), params=int(parameter_count(plain)[""]),
                                         weight_elems=sum(p.numel() for p in folded.parameters()),
                                         peak_elems=peak_activation_elements(folded, x))
            x = plain(x)
