"""The planned ops are those onnxruntime runs: fusions, NCHWc layout and reorders at fp32, the NHWC
integer graph at int8, checked against its optimized graphs."""
from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

from nas.core.config import load_search_config
from nas.core.errors import UserError
from nas.cost.layers import layer_table
from nas.hardware.latency_model import FittedModel, predict
from nas.hardware.plan import plan
from nas.hardware.profile_build import at_precision, designed_architectures, detect_layout_block, export_for_timing
from nas.space.arch import ArchSpec, parse
from nas.space.builder import build
from nas.space.zoo import FAMILIES, adapt_to_input


def test_generic_plan_fuses_activations_and_skips_reshapes() -> None:
    layers = layer_table(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"))
    kinds = [op.kind for op in plan(layers)]
    assert kinds == ["conv", "dwconv", "pwconv", "add", "pwconv", "gap", "linear"]
    assert "act" in [op.kind for op in plan(layers, fuses_activations=False)]


def test_blocked_layout_pads_channels_and_pays_reorders() -> None:
    layers = layer_table(parse("in_c1_r8-stem_k3_s1_c24-sh_r1_s1_g2_c32-head_c64-fc_c2"))
    ops = {op.name: op for op in plan(layers, runtime="onnxruntime", layout_block=16)}
    stem = layers[0]
    assert ops[stem.name].key == "conv_blocked" and ops[stem.name].macs == pytest.approx(stem.macs * 32 / 24)
    gconv = next(l for l in layers if l.kind == "gconv")
    assert ops[gconv.name].key == "gconv" and ops[gconv.name].macs == gconv.macs
    assert [op.key for op in ops.values() if op.kind == "reorder"][:1] == ["reorder_out"]  # blocked stem -> gconv
    efficiency = {k: 1.0 for k in ("conv", "pwconv", "gconv", "dwconv", "linear", "conv_blocked", "pwconv_blocked",
                                   "dwconv_blocked")}
    fitted = FittedModel(efficiency, 1.0, {"reorder": 0.5}, layout_block=16, runtime="onnxruntime")
    device = fitted.on(macs_per_s={"fp32": 1e9}, bandwidth_gb_s=1.0)
    reorders = [row for row in predict(layers, device).per_layer if row[1] == "reorder"]
    # out of the blocked stem into the shuffle unit's grouped conv and its shortcut pool, back into the
    # blocked layout after them, into the head, and out of the pooled features for the classifier
    assert [name.split()[0] for name, _, _ in reorders] == ["reorder_out", "reorder_in", "reorder_out", "reorder_in",
                                                            "reorder_out"]
    plain = FittedModel(efficiency, 1.0, {"reorder": 0.5}).on(macs_per_s={"fp32": 1e9}, bandwidth_gb_s=1.0)
    assert predict(layers, device).total_ms > predict(layers, plain).total_ms
    with pytest.raises(UserError, match="layout_block: 16 not allowed; allowed: 0 unless runtime is onnxruntime"):
        FittedModel(efficiency, 1.0, {}, layout_block=16)


def _optimized_graph_counts(spec: ArchSpec, tmp_path: Path) -> tuple[int, int, int, int, int]:
    """(reorders, blocked convs, plain convs, standalone activations, standalone adds) of the graph
    onnxruntime actually runs."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    shape = (1, spec.in_chs, spec.resolution, spec.resolution)
    ort.InferenceSession(export_for_timing(build(spec), shape), options, providers=["CPUExecutionProvider"])
    nodes = onnx.load(str(tmp_path / "optimized.onnx")).graph.node
    convs = [n for n in nodes if n.op_type in ("Conv", "FusedConv")]
    blocked = sum(n.domain == "com.microsoft.nchwc" for n in convs)
    return (sum(n.op_type in ("ReorderInput", "ReorderOutput") for n in nodes), blocked, len(convs) - blocked,
            sum(n.op_type in ("Clip", "Relu", "HardSigmoid", "HardSwish", "Sigmoid") for n in nodes),
            sum(n.op_type in ("Add", "Sum") for n in nodes))


def test_onnxruntime_plan_matches_the_graph_onnxruntime_optimizes(tmp_path: Path) -> None:
    """The planned fusions, layouts and reorders are the ones onnxruntime makes, on every block type
    (block size as detected on this CPU; 0 where it has no NCHWc)."""
    block = detect_layout_block(threads=1)
    zoo = [adapt_to_input(FAMILIES[f](width=0.5, resolution=224, classes=1000, in_chs=3), resolution=64, in_chs=3,
                          classes=10)
           for f in ("squeezenet1_1", "mobilenet_v3_small", "vgg11", "efficientnet_edgetpu_s", "mnasnet_a1")]
    for spec in designed_architectures(24, seed=11) + zoo:
        ops = plan(layer_table(spec), runtime="onnxruntime", layout_block=block)
        planned = (sum(op.kind == "reorder" for op in ops), sum(op.key.endswith("_blocked") for op in ops),
                   sum(op.key in ("conv", "pwconv", "gconv", "dwconv") for op in ops),
                   sum(op.kind == "act" for op in ops), sum(op.kind == "add" for op in ops))
        assert planned == _optimized_graph_counts(spec, tmp_path), spec.format()


def test_onnxruntime_int8_plan_matches_its_integer_graph(tmp_path: Path) -> None:
    """At int8 the planned transposes (NHWC <-> NCHW), integer convs and adds, and float islands
    (hard-swish) are those of the graph onnxruntime runs."""
    archs = designed_architectures(12, seed=1000, space=load_search_config("quickstart").space)
    archs += [parse("in_c3_r16-stem_k3_s2_c16-ir_r2_k3_s1_e4_c16_se1_hs1-sh_r1_s2_g2_c32-head_c64-fc_c10")]
    for spec in archs:
        shape = (1, spec.in_chs, spec.resolution, spec.resolution)
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / "int8.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(at_precision(export_for_timing(build(spec), shape), shape, "int8"), options,
                             providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
        planned = plan(layer_table(spec), runtime="onnxruntime", precision="int8")
        assert (ops.count("Transpose"), ops.count("QLinearConv"), ops.count("QLinearAdd"),
                ops.count("DequantizeLinear") - 1) == (
            sum(op.kind == "reorder" for op in planned), sum(op.kind in ("conv", "pwconv", "gconv", "dwconv")
                                                            for op in planned),
            sum(op.kind == "add" for op in planned), sum(op.kind == "act" for op in planned)), spec.format()
