"""The files a trial hands over, by kind, each measured by the runtime that runs it.

A profile names the kinds its device runs (``artifacts`` in ``hw_profiles/*.yaml``): ONNX for the
host CPU and the Jetson Nano (TensorRT builds its engine from ONNX), int8 QDQ ONNX for the Zynq DPU
(the search's static int8 recipe), int8 TFLite for the Edge TPU, fp32 and int8 TFLite for the
Raspberry Pi. The first kind whose precision matches the trial's is the trial's primary file: its
accuracy, size and host latency are the ones the record reports.

>>> [k.filename for k in kinds(("tflite-fp32", "tflite-int8"))]
['model_fp32.tflite', 'model_int8.tflite']
>>> primary_kind(kinds(("tflite-fp32", "tflite-int8")), "int8").name
'tflite-int8'
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
from torch import nn

from nas.core.errors import UserError
from nas.core.vocab import ARTIFACT_NAMES
from nas.data.splits import Splits
from nas.deploy.edgetpu import check_edgetpu
from nas.deploy.export import DeployInfo
from nas.deploy.tflite import converter_version, measure_tflite_latency, tflite_accuracy, to_tflite
from nas.deploy.tflite_int8 import ROUTE_NAMES, ROUTE_PACKAGES, Int8Options, QatWeights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArtifactKind:
    name: str
    format: str  # onnx or tflite
    precision: str | None  # None: the trial's own (the ONNX file is the recipe's output)
    filename: str


ARTIFACT_KINDS: dict[str, ArtifactKind] = {
    "onnx": ArtifactKind("onnx", "onnx", None, "model.onnx"),
    "tflite-fp32": ArtifactKind("tflite-fp32", "tflite", "fp32", "model_fp32.tflite"),
    "tflite-int8": ArtifactKind("tflite-int8", "tflite", "int8", "model_int8.tflite"),
}
assert tuple(ARTIFACT_KINDS) == ARTIFACT_NAMES  # the config checks names against the vocabulary
TFLITE_CALIBRATION_IMAGES = 256


def kinds(names: Sequence[str]) -> tuple[ArtifactKind, ...]:
    """The kinds named (in order); an unknown name is a one-line error."""
    unknown = [n for n in names if n not in ARTIFACT_KINDS]
    if unknown or not names:
        raise UserError(f"artifacts {list(names)} not allowed; allowed: one or more of {', '.join(ARTIFACT_KINDS)}")
    return tuple(ARTIFACT_KINDS[n] for n in dict.fromkeys(names))


def primary_kind(chosen: Sequence[ArtifactKind], precision: str) -> ArtifactKind:
    """The file whose figures the trial reports: the first of the trial's precision, else the first."""
    return next((k for k in chosen if k.precision in (None, precision)), chosen[0])


def not_written(kind: ArtifactKind, exc: BaseException) -> str:
    """One line saying that ``kind``'s file could not be made, and the converter's reason."""
    first = (str(exc).splitlines() or [""])[0][:200]
    return f"{kind.filename} not written: {type(exc).__name__}" + (f": {first}" if first else "")


def calibration_images(splits: Splits, count: int, seed: int) -> np.ndarray:
    """uint8 training images for int8 calibration (the same draw as the ONNX quantizer's)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(splits.y_train), min(count, len(splits.y_train)), replace=False)
    return splits.x_train[idx]


@dataclass(frozen=True)
class MeasuredFile:
    """One exported file with its figures, each measured on the file by ``runtime``."""

    kind: str
    path: str  # relative to the run folder
    bytes: int
    runtime: str
    val_accuracy: float
    test_accuracy: float
    host_latency_ms: float | None = None
    host_latency_p90_ms: float | None = None
    latency_how: str | None = None
    how: str = ""  # how the file was made (converter, quantizer, calibration)
    extra: tuple[tuple[str, Any], ...] = ()  # e.g. the Edge TPU readiness fields

    def to_json(self) -> dict[str, Any]:
        out = {"path": self.path, "bytes": self.bytes, "runtime": self.runtime,
               "val_accuracy": round(self.val_accuracy, 5), "test_accuracy": round(self.test_accuracy, 5),
               "host_latency_ms": None if self.host_latency_ms is None else round(self.host_latency_ms, 4),
               "host_latency_p90_ms": None if self.host_latency_p90_ms is None else round(self.host_latency_p90_ms, 4),
               "latency_how": self.latency_how, "how": self.how}
        return out | dict(self.extra)


def tflite_file(model: nn.Module, info: DeployInfo, kind: ArtifactKind, splits: Splits, *, resolution: int,
                seed: int, rel_path: str, int8: Int8Options | None = None, threads: int = 1,
                qat: QatWeights | None = None) -> tuple[bytes, MeasuredFile]:
    """Convert the float ``model`` to ``kind`` (TFLite fp32 or full-integer int8), then measure
    the file: accuracy and host latency in the LiteRT interpreter, and for int8 the Edge TPU
    readiness check. int8 is made by every route of ``int8`` (default: the default options) on
    training images, from ``model`` and, when given, from ``qat``'s QAT-tuned weights too (keys
    ``qat+<route>``); the file with the best validation accuracy is kept (the first made on a
    tie), and which one, with every candidate's validation accuracy, goes into ``how`` and ``extra``."""
    if kind.precision != "int8":
        data = to_tflite(model, info, precision="fp32")
        return data, _measure(data, kind, splits, resolution, rel_path, threads, converter_version(), ())
    options = int8 or Int8Options()
    calibration = calibration_images(splits, options.calibration_images, seed)
    sources = [(route, route, model) for route in options.routes]
    if qat is not None:
        sources += [(f"qat+{route}", route, qat.model) for route in options.routes]
    made, failed = {}, {}
    for key, route, net in sources:
        try:
            made[key] = to_tflite(net, info, precision="int8", calibration=calibration,
                                  preprocess=splits.preprocess, route=route, per_channel=options.per_channel)
        except Exception as exc:  # noqa: BLE001 - converters raise many kinds; another route may convert it
            failed[key] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
            log.warning("int8 TFLite route %s failed on this network: %s", key, failed[key])
    if not made:
        raise RuntimeError(f"no int8 TFLite route converted the network: {failed}")
    val = {key: tflite_accuracy(data, splits.x_val, splits.y_val, preprocess=splits.preprocess,
                                resolution=resolution) for key, data in made.items()}
    order = [key for key, _, _ in sources]
    key = max(made, key=lambda k: (val[k], -order.index(k)))
    route = key.removeprefix("qat+")
    notes = options.unexpressed() + [f"route {r} failed ({why})" for r, why in failed.items()]
    for note in notes:
        log.info("int8 TFLite: %s", note)
    weights = f"from {qat.describe}; " if qat is not None and key.startswith("qat+") else ""
    how = (f"{converter_version()}, {ROUTE_NAMES[route]} ({version(ROUTE_PACKAGES[route])}): {weights}"
           f"{options.describe()}; chosen on validation accuracy ({', '.join(f'{k} {100 * a:.2f}%' for k, a in val.items())})"
           + "".join(f"; {note}" for note in notes))
    data = made[key]
    extra = (("int8_route", key), ("int8_route_val_accuracy", {k: round(a, 6) for k, a in val.items()}),
             *check_edgetpu(data).to_attrs().items())
    return data, _measure(data, kind, splits, resolution, rel_path, threads, how, extra)


def _measure(data: bytes, kind: ArtifactKind, splits: Splits, resolution: int, rel_path: str, threads: int,
             how: str, extra: tuple[tuple[str, Any], ...]) -> MeasuredFile:
    accuracy = {name: tflite_accuracy(data, x, y, preprocess=splits.preprocess, resolution=resolution)
                for name, x, y in (("val", splits.x_val, splits.y_val), ("test", splits.x_test, splits.y_test))}
    latency = measure_tflite_latency(data, threads=threads)
    return MeasuredFile(kind.name, rel_path, len(data), latency.runtime, accuracy["val"], accuracy["test"],
                        latency.median_ms, latency.p90_ms,
                        f"measured on this host with {latency.runtime}, batch 1, {latency.threads} thread(s), "
                        f"median of {latency.repeats} runs after {latency.warmup} warm-up", how, extra)
