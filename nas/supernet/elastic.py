"""Elastic blocks: one block position of a supernet stage, of one kind, at its largest setting.

What a kind's elastic block holds and how it runs, exports and reorders at a smaller setting is
that kind's entry in :mod:`nas.space.kinds` (its ``elastic_*`` methods, over the elastic layers
of :mod:`nas.space.kinds.elastic`); kinds a supernet cannot slice say why there
(``elastic_why``). :meth:`ElasticBlock.export_into` copies a setting's slices into the ordinary
block :func:`nas.space.builder.build` makes, so a subnetwork is a plain hwnas network.
"""
from __future__ import annotations

import torch
from torch import nn

from nas.core.errors import UserError
from nas.space.kinds import block_kind, elastic_kinds
from nas.space.kinds.elastic import ElasticConvBn

__all__ = ["ElasticBlock", "ElasticConvBn"]


class ElasticBlock(nn.Module):
    """One block position of a stage, of one kind, at its largest setting."""

    def __init__(self, kind: str, max_in: int, max_out: int, *, max_k: int, max_e: int, stride: int,
                 hswish: bool = False) -> None:
        super().__init__()
        self.kind, self.stride = kind, stride
        self.entry = block_kind(kind)
        if self.entry.elastic_why:
            raise UserError(f"block kind {kind!r} is not elastic ({self.entry.elastic_why}); elastic kinds: "
                            f"{', '.join(elastic_kinds())}")
        # attributes by the entry's names (expand, spatial, project...): checkpoints keep these keys
        for name, layer in self.entry.elastic_layers(max_in, max_out, max_k=max_k, max_e=max_e, stride=stride,
                                                     hswish=hswish).items():
            self.add_module(name, layer)

    def _layers(self) -> dict[str, ElasticConvBn]:
        return {name: m for name, m in self.named_children() if isinstance(m, ElasticConvBn)}

    def forward(self, x: torch.Tensor, out_chs: int, k: int, e: int) -> torch.Tensor:
        return self.entry.elastic_forward(self._layers(), x, out_chs, k, e, self.stride)

    def export_into(self, block: nn.Module, in_chs: int, out_chs: int, k: int, e: int) -> None:
        """Copy this setting's weights into the block :func:`nas.space.builder.build` made for it."""
        self.entry.elastic_export(self._layers(), block, in_chs, out_chs, k, e)

    def hidden_layers(self, *, expansion_one: bool) -> tuple[list[ElasticConvBn], ElasticConvBn] | None:
        """The layers writing this block's hidden channels and the layer reading them; None where
        the hidden channels are tied to the block's input."""
        return self.entry.elastic_hidden(self._layers(), expansion_one=expansion_one)

    @torch.no_grad()
    def reorder(self, optimizer: torch.optim.Optimizer | None = None, *, expansion_one: bool = True) -> bool:
        """Sort the hidden channels by importance (L1 norm of the weights reading them, as once-for-all
        does), permuting the optimizer's state with them; True when something was reordered.
        ``expansion_one``: the space offers e=1."""
        layers = self.hidden_layers(expansion_one=expansion_one)
        if layers is None:
            return False
        writers, reader = layers
        order = torch.argsort(reader.conv.weight.abs().sum(dim=(0, 2, 3)), descending=True)
        for layer in writers:
            for p in (layer.conv.weight, layer.bn.weight, layer.bn.bias):
                _permute(p, 0, order, optimizer)
            for buf in (layer.bn.running_mean, layer.bn.running_var):
                assert buf is not None
                buf.copy_(buf[order])
        _permute(reader.conv.weight, 1, order, optimizer)
        return True


def _permute(p: torch.Tensor, dim: int, order: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
    p.data.copy_(p.data.index_select(dim, order))
    state = optimizer.state.get(p, {}) if optimizer is not None else {}
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.shape == p.shape:
            value.copy_(value.index_select(dim, order))
