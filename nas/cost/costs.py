"""Cost accounting from the architecture alone: MACs, parameters, weight and activation memory.

Conventions (the same for every model, so figures compare):

- **MACs** are fvcore's count of conv and linear ops on a batch of one at the arch's resolution.
  fvcore counts one fused multiply-add as one flop, so its "flops" are MACs. BatchNorm is not
  counted because export folds it into the preceding conv; pooling, activations, adds and
  shuffles are not multiply-adds and are left out, as in the MobileNet and ShuffleNet papers.
- **Parameters** are all trainable parameters of the PyTorch model, BatchNorm included (the
  papers' convention).
- **Weight memory** is the parameter count of the deployed graph (BN folded into conv weights and
  biases) times the bytes of the precision.
- **Peak activation memory** is the largest total of live tensors at any step of the forward
  pass in execution order (batch 1, input and output included). A tensor is live from the op that
  makes it to its last reader. Activations, reshapes and channel slices are counted in place
  (runtimes fuse them into the producing op or make views). Memory sizes are in MB of 10^6 bytes.
"""
from __future__ import annotations

import copy
import logging
import operator
from dataclasses import dataclass

import torch
from fvcore.nn import FlopCountAnalysis, parameter_count
from torch import fx, nn

from nas.core.errors import UserError
from nas.core.vocab import BYTES_PER_ELEMENT
from nas.cost._trace import trace_with_shapes
from nas.space.arch import ArchSpec
from nas.space.builder import build, fuse_bn

log = logging.getLogger(__name__)

_MAC_OPS = {"conv", "linear", "matmul", "addmm", "bmm", "einsum"}
_IN_PLACE_MODULES = (nn.Identity, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Flatten)
_IN_PLACE_METHODS = {"flatten", "view", "reshape", "relu", "relu_"}
_IN_PLACE_FUNCTIONS = {torch.flatten, torch.relu, torch.nn.functional.relu, torch.nn.functional.relu6,
                       operator.getitem}


@dataclass(frozen=True)
class ModelCosts:
    """Costs of one architecture at one precision; see the module docstring for conventions."""

    macs: int
    params: int
    weight_mb: float
    peak_activation_mb: float
    precision: str

    @property
    def memory_mb(self) -> float:
        """Weights plus peak live activations: what must fit in the device's memory."""
        return self.weight_mb + self.peak_activation_mb


def count_costs(spec: ArchSpec, *, precision: str = "fp32", model: nn.Module | None = None) -> ModelCosts:
    """Price an architecture (optionally an already-built model of it) without training.

    >>> from nas.space.arch import parse
    >>> count_costs(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2")).macs
    21536
    """
    if precision not in BYTES_PER_ELEMENT:
        raise UserError(f"precision {precision!r} not allowed; allowed: {', '.join(BYTES_PER_ELEMENT)}")
    model = (build(spec) if model is None else copy.deepcopy(model)).eval()
    x = torch.zeros(1, spec.in_chs, spec.resolution, spec.resolution)
    params = int(parameter_count(model)[""])
    macs = count_macs(model, x)
    fused = fuse_bn(model)
    nbytes = BYTES_PER_ELEMENT[precision]
    weight_elems = sum(p.numel() for p in fused.parameters())
    peak = peak_activation_elements(fused, x)
    return ModelCosts(macs=macs, params=params, weight_mb=weight_elems * nbytes / 1e6,
                      peak_activation_mb=peak * nbytes / 1e6, precision=precision)


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of conv and linear ops under fvcore (1 fused multiply-add = 1 flop)."""
    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    left_out = sorted(op for op, n in by_op.items() if op not in _MAC_OPS and n)
    if left_out:
        log.debug("not counted as MACs by convention: %s", ", ".join(left_out))
    return int(sum(n for op, n in by_op.items() if op in _MAC_OPS))


def _aliases_input(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], _IN_PLACE_MODULES)
    if node.op == "call_method":
        return node.target in _IN_PLACE_METHODS
    if node.op == "call_function":
        return node.target in _IN_PLACE_FUNCTIONS
    return False


def _elements(node: fx.Node) -> int | None:
    shape = getattr(node.meta.get("tensor_meta"), "shape", None)
    return int(shape.numel()) if shape is not None else None


def peak_activation_elements(model: nn.Module, x: torch.Tensor) -> int:
    """Largest number of tensor elements live at once over a forward pass (see module doc)."""
    graph_module, modules = trace_with_shapes(model, x)
    order = {n: i for i, n in enumerate(graph_module.graph.nodes)}
    buffer_of: dict[fx.Node, fx.Node] = {}  # node -> the node whose buffer holds its value
    size: dict[fx.Node, int] = {}
    end: dict[fx.Node, int] = {}
    for node in graph_module.graph.nodes:
        inputs = [a for a in node.all_input_nodes if a in buffer_of]
        if inputs and _aliases_input(node, modules):
            buffer_of[node] = buffer_of[inputs[0]]
        elif (elements := _elements(node)) is not None:
            buffer_of[node] = node
            size[node] = elements
        else:
            continue
        owner = buffer_of[node]
        last = max((order[u] for u in node.users), default=len(order))
        end[owner] = max(end.get(owner, order[node]), last)
    peak = 0
    for step in range(len(order)):
        live = sum(n for b, n in size.items() if order[b] <= step <= end[b])
        peak = max(peak, live)
    return peak
