"""The teacher's input size comes from its metadata or its static input shape, or is a one-line error."""
from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from nas.core.errors import UserError
from nas.deploy.export import DeployInfo, to_onnx
from nas.space.arch import parse
from nas.space.builder import build
from nas.train.teacher import teacher_resolution

ARCH = "in_c1_r12-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c10"


def _export(tmp_path: Path, *, metadata: bool, static: bool) -> Path:
    info = DeployInfo(arch=ARCH, input_shape=(1, 1, 12, 12), resize="none", mean=(0.0,), std=(1.0,),
                      channel_order="gray", classes=tuple("abcdefghij"))
    proto = onnx.load_from_string(to_onnx(build(parse(ARCH)), info))
    if not metadata:
        del proto.metadata_props[:]
    if not static:
        for dim in proto.graph.input[0].type.tensor_type.shape.dim[2:]:
            dim.dim_param = "size"
    path = tmp_path / "t.onnx"
    onnx.save(proto, str(path))
    return path


def test_resolution_from_metadata_then_static_shape(tmp_path: Path) -> None:
    assert teacher_resolution(_export(tmp_path, metadata=True, static=False)) == 12
    assert teacher_resolution(_export(tmp_path, metadata=False, static=True)) == 12
    with pytest.raises(UserError, match="no hwnas.input_shape metadata and no static input size"):
        teacher_resolution(_export(tmp_path, metadata=False, static=False))
