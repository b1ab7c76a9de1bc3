"""The teacher of distilled candidate training (``train.distill``): an ONNX classifier run once
over the training images with onnxruntime, its logits kept as soft targets for every trial.

The teacher reads the same preprocessing as the candidates (the dataset's mean, std and channel
order) at its own resolution, taken from its ``hwnas.input_shape`` metadata or its static input
shape.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx

from nas.core.config import TeacherConfig
from nas.core.errors import UserError
from nas.data.splits import Splits, to_tensor
from nas.deploy.export import onnx_accuracy
from nas.deploy.host_latency import session

log = logging.getLogger(__name__)


def teacher_resolution(path: Path) -> int:
    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if "hwnas.input_shape" in props:
        return int(json.loads(props["hwnas.input_shape"])[-1])
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4 and dims[-1].dim_value > 0:
        return int(dims[-1].dim_value)
    raise UserError(f"teacher {path}: no hwnas.input_shape metadata and no static input size; "
                    "export it with hwnas or give it a fixed NCHW input shape")


def teacher_logits(cfg: TeacherConfig, splits: Splits, *, batch_size: int = 500, threads: int = 2) -> np.ndarray:
    """Logits of the teacher for every training image, in the order of ``splits.x_train``."""
    path = Path(cfg.model)
    if not path.is_file():
        raise UserError(f"train.distill.model: {path} not found; give the path of an ONNX classifier, e.g. "
                        "runs/<run>/models/<trial>/model.onnx")
    resolution = teacher_resolution(path)
    sess = session(path, threads=threads)
    name = sess.get_inputs()[0].name
    out = []
    for start in range(0, len(splits.y_train), batch_size):
        x = to_tensor(splits.x_train[start:start + batch_size], splits.preprocess, resolution).numpy()
        out.append(sess.run(None, {name: x})[0])
    logits = np.concatenate(out).astype(np.float32)
    if logits.ndim != 2 or logits.shape[1] != len(splits.classes):
        raise UserError(f"teacher {path} has {logits.shape[-1]} outputs; the dataset has {len(splits.classes)} "
                        "classes")
    val = onnx_accuracy(path, splits.x_val, splits.y_val, preprocess=splits.preprocess, resolution=resolution,
                        threads=threads)
    log.info("teacher %s: %d training images scored, validation accuracy %.2f%%", path, len(logits), 100 * val)
    return logits
