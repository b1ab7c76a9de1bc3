"""One torch.fx trace with shapes, shared by the memory model and the layer table."""
from __future__ import annotations

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from nas.space.blocks import ChannelShuffle


class _Tracer(fx.Tracer):
    # A channel shuffle is one op (an ONNX Gather), not its permutation buffer plus an index_select.
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, ChannelShuffle) or super().is_leaf_module(m, qualname)


def trace_with_shapes(model: nn.Module, x: torch.Tensor) -> tuple[fx.GraphModule, dict[str, nn.Module]]:
    """The model's graph with ``tensor_meta`` on every node, and its modules by name."""
    graph_module = fx.GraphModule(model, _Tracer().trace(model))
    ShapeProp(graph_module).propagate(x)
    return graph_module, dict(graph_module.named_modules())
