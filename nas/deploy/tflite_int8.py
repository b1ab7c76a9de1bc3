"""Full-integer int8 TFLite: two routes from the same float network, and the recipe choices each
can express.

- ``aiq``: litert-torch's fp32 file, then AI Edge Quantizer's static recipe (int8 weights,
  symmetric, per output channel or per tensor; int8 activations min-max calibrated; int8 input
  and output): hwnas's only route until now.
- ``pt2e``: PyTorch 2 export quantization with litert-torch's PT2E quantizer (symmetric int8
  weights, static int8 activations, observers calibrated on the same images), converted by
  litert-torch.

Neither route is better everywhere (benchmarks/tflite_converters.py: PT2E lost 16.6 points on a
network with 8-group convolutions where AI Edge Quantizer lost 0.2; on other networks PT2E lost
less), so :func:`nas.deploy.artifacts.tflite_file` makes the file both ways and keeps the one with
the better validation accuracy (never the test split), recording which.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas.core.errors import UserError
from nas.core.vocab import QUANTIZE_SCALES
from nas.deploy import _optional

INT8_ROUTES = ("aiq", "pt2e")
ROUTE_NAMES = {"aiq": "AI Edge Quantizer static int8", "pt2e": "litert-torch PT2E static int8"}
ROUTE_PACKAGES = {"aiq": "ai-edge-quantizer", "pt2e": "litert-torch"}  # whose version the file's how names


@dataclass(frozen=True)
class Int8Options:
    """A recipe's static int8 choices, as the TFLite routes take them (the search maps its
    recipe's quantize settings to these; the default is what a recipe without them asks)."""

    calibration_images: int = 256
    per_channel: bool = True
    calibration_method: str = "minmax"
    scales: str = QUANTIZE_SCALES[0]
    qat: bool = False  # the float network was fine-tuned quantization-aware (its ONNX file's recipe)
    routes: tuple[str, ...] = INT8_ROUTES  # each makes a file; the best on validation accuracy is kept

    def __post_init__(self) -> None:
        bad = [r for r in self.routes if r not in INT8_ROUTES]
        if bad or not self.routes:
            raise UserError(f"int8 TFLite route {bad[0] if bad else '(none)'!r} not allowed; allowed: "
                            f"{', '.join(INT8_ROUTES)}")

    def unexpressed(self) -> list[str]:
        """The recipe's choices a TFLite int8 file cannot carry, each said in one line."""
        notes = []
        if self.calibration_method != "minmax":
            notes.append(f"calibration {self.calibration_method}: the TFLite int8 routes calibrate min-max only")
        if self.scales != QUANTIZE_SCALES[0]:
            notes.append(f"{self.scales} scales: TFLite int8 stores float scales; the file has float scales")
        if self.qat:
            notes.append("QAT: the TFLite file is quantized after training from the QAT-tuned float weights "
                         "(its own observers, not the ONNX file's fake-quant ranges)")
        return notes

    def describe(self) -> str:
        return (f"int8 weights {'per output channel' if self.per_channel else 'per tensor'}, int8 activations "
                f"min-max calibrated on {self.calibration_images} training images, int8 input and output")


@dataclass(frozen=True)
class QatWeights:
    """A QAT-tuned copy of the float network, a further source of int8 files beside the network
    itself (``describe``: how it was tuned, for the file's ``how``)."""

    model: nn.Module
    describe: str


def aiq_int8(fp32: bytes, x_nhwc: np.ndarray, signature_input: str, *, per_channel: bool) -> bytes:
    """AI Edge Quantizer's full-integer static recipe on a float .tflite file."""
    recipe = _optional.load("ai_edge_quantizer.recipe").static_wi8_ai8()
    for entry in recipe:
        entry["op_config"]["weight_tensor_config"]["granularity"] = "CHANNELWISE" if per_channel else "TENSORWISE"
    quantizer = _optional.load("ai_edge_quantizer.quantizer").Quantizer(bytearray(fp32))
    quantizer.load_quantization_recipe(recipe)
    samples = [{signature_input: x_nhwc[i:i + 1]} for i in range(len(x_nhwc))]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # progress bars
        ranges = quantizer.calibrate({"serving_default": samples}, num_threads=1)
        out = quantizer.quantize(ranges).quantized_model
    if out is None:
        raise RuntimeError("AI Edge Quantizer returned no model")
    return bytes(out)


def pt2e_int8(net: nn.Module, sample: tuple[torch.Tensor], x_nhwc: np.ndarray, *, per_channel: bool) -> bytes:
    """PT2E static int8 of ``net`` (NHWC input, BatchNorm folded), converted by litert-torch."""
    pt2e = _optional.load("litert_torch.quantize.pt2e_quantizer")
    prepare = _optional.load("torchao.quantization.pt2e.quantize_pt2e")
    quantizer = pt2e.PT2EQuantizer().set_global(
        pt2e.get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=False))
    graph = prepare.prepare_pt2e(torch.export.export(net, sample).module(), quantizer)
    _optional.load("torchao.quantization.pt2e").move_exported_model_to_eval(graph)
    x = torch.from_numpy(x_nhwc)
    with torch.no_grad():
        for i in range(len(x)):
            graph(x[i:i + 1])
    graph = prepare.convert_pt2e(graph, fold_quantize=False)
    for module in graph.modules():
        module.training = False
    config = _optional.load("litert_torch.quantize.quant_config").QuantConfig(pt2e_quantizer=quantizer)
    edge = _optional.load("litert_torch").convert(graph, sample, quant_config=config)
    return bytes(edge.model_content())
