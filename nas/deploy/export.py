"""ONNX export of a trained candidate, with what a deployer needs in ``metadata_props``,
and accuracy measured on the exported file with onnxruntime."""
from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from nas.data.splits import Preprocess, to_tensor
from nas.deploy.contract import CONTRACT_KEY, contract_json, preprocess_contract
from nas.deploy.host_latency import session
from nas.space.arch import ArchSpec
from nas.space.builder import fuse_bn

OPSET = 17


@dataclass(frozen=True)
class DeployInfo:
    """Everything outside the graph that a deployer needs to feed the model correctly."""

    arch: str
    input_shape: tuple[int, int, int, int]
    resize: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str
    classes: tuple[str, ...]
    precision: str = "fp32"
    source_size: int = 0  # side of the images the model is fed from (0: the input's own side)

    @classmethod
    def for_arch(cls, spec: ArchSpec, preprocess: Preprocess, classes: tuple[str, ...]) -> DeployInfo:
        return cls(arch=spec.format(), input_shape=(1, spec.in_chs, spec.resolution, spec.resolution),
                   resize=preprocess.describe_resize(spec.resolution), mean=preprocess.mean, std=preprocess.std,
                   channel_order=preprocess.channel_order, classes=classes, source_size=preprocess.source_size)

    def contract(self, *, layout: str = "NCHW", batch: int | None = None,
                 input_quantization: tuple[float, int, str] | None = None,
                 output_quantization: tuple[float, int, str] | None = None) -> dict[str, Any]:
        """The ``hwnas.preprocess`` deploy contract (see :mod:`nas.deploy.contract`)."""
        _, c, h, _ = self.input_shape
        return preprocess_contract(source_size=self.source_size or h, resolution=h, channels=c,
                                   channel_order=self.channel_order, mean=self.mean, std=self.std, layout=layout,
                                   batch=batch, input_quantization=input_quantization,
                                   output_quantization=output_quantization)

    def metadata(self) -> dict[str, str]:
        return {
            "hwnas.arch": self.arch,
            "hwnas.input_shape": json.dumps(list(self.input_shape)),
            "hwnas.input_layout": "NCHW, float32, pixels scaled to [0, 1] then (x - mean) / std",
            "hwnas.resize": self.resize,
            "hwnas.mean": json.dumps(list(self.mean)),
            "hwnas.std": json.dumps(list(self.std)),
            "hwnas.channel_order": self.channel_order,
            "hwnas.classes": json.dumps(list(self.classes)),
            "hwnas.precision": self.precision,
            "hwnas.output": "logits (apply softmax for probabilities)",
            CONTRACT_KEY: contract_json(self.contract()),  # the ONNX file: NCHW float32, any batch
        }


def to_onnx(model: nn.Module, info: DeployInfo) -> bytes:
    """Export with BatchNorm folded and a dynamic batch axis; returns the serialized model."""
    fused = fuse_bn(copy.deepcopy(model).cpu().eval())
    x = torch.zeros(info.input_shape)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which takes ~25x longer per
        # model: too slow for a per-trial export. torch is pinned, so the warning is noise here.
        warnings.simplefilter("ignore", DeprecationWarning)
        # a file-like target works (torch writes the bytes to it); the stubs name only paths
        torch.onnx.export(fused, (x,), buffer,  # type: ignore[arg-type]
                          dynamo=False, opset_version=OPSET, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, info.metadata())
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def read_metadata(path: str | Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def onnx_accuracy(model: str | Path | bytes, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess,
                  resolution: int, batch_size: int = 500, threads: int = 2) -> float:
    """Top-1 accuracy of an ONNX file run by onnxruntime on uint8 NHWC images."""
    sess = session(model, threads=threads)
    name = sess.get_inputs()[0].name
    correct = 0
    for start in range(0, len(labels), batch_size):
        x = to_tensor(images[start:start + batch_size], preprocess, resolution).numpy()
        logits = sess.run(None, {name: x})[0]
        correct += int((logits.argmax(axis=1) == labels[start:start + batch_size]).sum())
    return correct / len(labels)
