"""The layer table of any ONNX graph: models written without the grammar, priced from their shapes."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from nas.cost.costs import count_costs, count_macs
from nas.cost.graph import UnpricedOp, graph_costs, graph_model, onnx_layers, peak_activation_elements
from nas.cost.layers import Layer, layer_table
from nas.deploy.own_model import module_to_onnx
from nas.space.arch import parse
from nas.space.builder import build
from tests import own_models

SHAPE = (1, 3, 32, 32)


def _table(net: torch.nn.Module, shape: tuple[int, ...] = SHAPE) -> list[Layer]:
    return onnx_layers(graph_model(onnx.load_from_string(module_to_onnx(net, shape))))


@pytest.mark.parametrize("name", sorted(own_models.ALL))
def test_macs_of_every_plain_model_equal_fvcore(name: str) -> None:
    net = own_models.ALL[name]().eval()
    layers = _table(net)
    # fvcore does not count the two attention products inside nn.MultiheadAttention's fused op
    attention = 2 * 4 * 16 * 16 * 8 if name == "mha" else 0
    assert sum(l.macs for l in layers) == count_macs(net, torch.zeros(SHAPE)) + attention
    assert not [l for l in layers if l.op in ("Identity", "Dropout", "Shape", "Constant")]
    # BatchNorm is folded into the conv before it; DenseNet's pre-activation ones (BN before conv) stay
    assert bool([l for l in layers if l.op == "BatchNormalization"]) == (name == "densenet")


@pytest.mark.parametrize("name, kinds", [
    ("vit", {"matmul", "norm", "softmax", "transpose", "linear"}), ("regnet", {"gconv", "add"}),
    ("inception", {"concat", "maxpool"}), ("efficientnet", {"dwconv", "mul", "gap"}), ("resnet", {"conv", "add"}),
])
def test_kinds_the_grammar_lacks_are_named(name: str, kinds: set[str]) -> None:
    layers = _table(own_models.ALL[name]())
    assert kinds <= {l.kind for l in layers}
    matmuls = [l for l in layers if l.kind == "matmul"]
    for l in matmuls:  # two activations, no stored weights: q @ k^T of 4 heads, 16 tokens, 8 channels each
        assert l.weight_elems == 0 and len(l.inputs) == 2 and l.macs == 4 * 16 * 16 * 8


def test_dilated_grouped_conv_macs_do_not_depend_on_dilation() -> None:
    plain, dilated = (torch.nn.Conv2d(8, 16, 3, padding=d, dilation=d, groups=4) for d in (1, 2))
    a, b = _table(plain, (1, 8, 10, 10)), _table(dilated, (1, 8, 10, 10))
    assert a[0].kind == b[0].kind == "gconv" and a[0].macs == b[0].macs == 10 * 10 * 16 * 2 * 9


def test_grammar_network_through_onnx_matches_its_own_table() -> None:
    spec = parse("in_c3_r32-stem_k3_s2_c16-ir_r2_k3_s2_e4_c24_se1_hs1-ds_r1_k5_s1_c24-head_c64-fc_c10")
    model = build(spec).eval()
    direct, via_onnx = layer_table(spec, model=model), _table(model)
    assert sum(l.macs for l in direct) == sum(l.macs for l in via_onnx) == count_costs(spec).macs
    compute = ("conv", "pwconv", "dwconv", "gconv", "linear")
    assert Counter(l.kind for l in direct if l.kind in compute) == Counter(l.kind for l in via_onnx if l.kind in compute)


def test_costs_of_a_model_file() -> None:
    net = own_models.resnet().eval()
    graph = graph_model(onnx.load_from_string(module_to_onnx(net, SHAPE)))
    layers = onnx_layers(graph)
    costs = graph_costs(graph, layers, precision="int8", params=sum(p.numel() for p in net.parameters()))
    folded = sum(l.weight_elems for l in layers)
    assert costs.weight_mb == pytest.approx(folded / 1e6) and costs.params > folded  # BN counted, then folded
    # the largest moment: the stem's 16x32x32 output live with the first block's 16x32x32 output and its input
    assert costs.peak_activation_mb == pytest.approx(peak_activation_elements(layers) / 1e6)
    assert peak_activation_elements(layers) >= 2 * 16 * 32 * 32


def _graph(op: str, **attrs: object) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node(op, ["c"], ["y"], **attrs)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_op_without_a_kind_is_refused_by_name() -> None:
    with pytest.raises(UnpricedOp, match="op LpPool .* has no layer kind"):
        onnx_layers(graph_model(_graph("LpPool", kernel_shape=[2, 2])))


def test_open_dims_need_an_input_shape_and_batch_is_fixed() -> None:
    proto = _graph("Relu")
    proto.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    with pytest.raises(Exception, match="open dimensions"):
        graph_model(proto)
    graph = graph_model(proto, (3, 8, 8))
    assert graph.input_shape == (1, 3, 8, 8) and onnx_layers(graph)[0].macs == 8 * 8 * 4 * 27
