from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch

from nas.data.datasets import load_idx_dataset
from nas.data.splits import split, to_tensor
from nas.deploy.export import DeployInfo, onnx_accuracy, read_metadata, to_onnx
from nas.space.arch import parse
from nas.space.builder import build
from tests.conftest import make_idx_dataset


def test_export_carries_deploy_metadata_and_matches_torch(tmp_path: Path) -> None:
    raw = load_idx_dataset("fashion-mnist", make_idx_dataset(tmp_path, n_train=100, n_test=60, size=16))
    s = split(raw, val_fraction=0.1, seed=0)
    spec = parse("in_c1_r12-stem_k3_s1_c8-sh_r1_s2_g2_c16-ir_r1_k3_s1_e3_c16-head_c32-fc_c10")
    model = build(spec).eval()
    info = DeployInfo.for_arch(spec, s.preprocess, s.classes)
    path = tmp_path / "m.onnx"
    path.write_bytes(to_onnx(model, info))
    onnx.checker.check_model(onnx.load(str(path)))
    meta = read_metadata(path)
    assert meta["hwnas.arch"] == spec.format()
    assert json.loads(meta["hwnas.input_shape"]) == [1, 1, 12, 12]
    assert meta["hwnas.resize"].startswith("bilinear (antialiased) from 16x16 to 12x12")
    assert json.loads(meta["hwnas.mean"]) == list(s.preprocess.mean)
    assert json.loads(meta["hwnas.classes"])[9] == "Ankle boot"
    assert meta["hwnas.channel_order"] == "gray" and meta["hwnas.precision"] == "fp32"
    with torch.no_grad():
        torch_acc = float((model(to_tensor(s.x_test, s.preprocess, 12)).argmax(1).numpy() == s.y_test).mean())
    assert onnx_accuracy(path, s.x_test, s.y_test, preprocess=s.preprocess, resolution=12, batch_size=7) == torch_acc


def test_channel_shuffle_exports_as_one_gather(tmp_path: Path) -> None:
    spec = parse("in_c1_r12-stem_k3_s1_c8-sh_r1_s1_g2_c16-sh2_r1_s1_c16-fc_c10")
    info = DeployInfo(arch=spec.format(), input_shape=(1, 1, 12, 12), resize="none", mean=(0.0,), std=(1.0,),
                      channel_order="gray", classes=tuple("abcdefghij"))
    ops = [n.op_type for n in onnx.load_from_string(to_onnx(build(spec), info)).graph.node]
    assert ops.count("Gather") == 2 and ops.count("Slice") == 2  # two shuffles; sh2's static channel split
    assert not {"Shape", "Transpose", "Reshape", "Div"} & set(ops)
