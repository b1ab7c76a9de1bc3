"""The deploy contract: one machine-readable JSON metadata entry, ``hwnas.preprocess``, in every
exported file (ONNX ``metadata_props``, TFLite ``Model.metadata``), saying exactly how an image
becomes the model's input and how its output is read; and :func:`apply_contract`, the reference
implementation that follows it (``hwnas predict`` runs it).

The contract spells out what a free-text "bilinear" leaves open: whether the resize is
antialiased (a consumer that skips it loses 1-3 points on downscaled inputs), pixel-centre
alignment, the order of scaling, resizing and normalisation, layout, dtype, and the input and
output quantization of an integer model.

>>> c = preprocess_contract(source_size=28, resolution=20, channels=1, channel_order="gray",
...                         mean=(0.286,), std=(0.353,), layout="NCHW")
>>> c["resize"]["antialias"], c["input"]["shape"]
(True, [1, 1, 20, 20])
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

CONTRACT_KEY = "hwnas.preprocess"
CONTRACT_VERSION = 1
LAYOUTS = ("NCHW", "NHWC")


def preprocess_contract(*, source_size: int, resolution: int, channels: int, channel_order: str,
                        mean: tuple[float, ...], std: tuple[float, ...], layout: str, batch: int | None = None,
                        input_quantization: tuple[float, int, str] | None = None,
                        output_quantization: tuple[float, int, str] | None = None) -> dict[str, Any]:
    """The contract of a model that takes ``channels`` x ``resolution``^2 inputs made from
    ``source_size``^2 uint8 images. Quantizations are (scale, zero point, dtype) of an integer
    input or output tensor."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}; allowed: {', '.join(LAYOUTS)}")
    shape = [batch or 1, channels, resolution, resolution] if layout == "NCHW" else \
        [batch or 1, resolution, resolution, channels]
    resize = None
    if resolution != source_size:
        resize = {"method": "bilinear", "antialias": True, "align_corners": False, "half_pixel_centers": True,
                  "from": [source_size, source_size], "to": [resolution, resolution],
                  "in": "float32 pixels after scaling to [0, 1], before normalisation",
                  "reference": "torch.nn.functional.interpolate(x, size=to, mode='bilinear', align_corners=False, "
                               "antialias=True): when downscaling, the triangle filter is widened by the scale "
                               "factor (antialias), as PIL's BILINEAR resampling does"}
    def quant(q: tuple[float, int, str] | None, formula: str) -> dict[str, Any] | None:
        return None if q is None else {"scale": float(q[0]), "zero_point": int(q[1]), "dtype": q[2],
                                       "formula": formula}

    return {
        "version": CONTRACT_VERSION,
        "source": {"height": source_size, "width": source_size, "channels": channels,
                   "channel_order": channel_order, "dtype": "uint8", "range": [0, 255]},
        "steps": ["x = uint8 pixels (channel_order) as float32 / 255", "x = resize(x) if resize else x",
                  "x = (x - mean) / std per channel", "arrange x in layout",
                  "q = clamp(round(x / scale) + zero_point) if input.quantization"],
        "scale": 1 / 255,
        "resize": resize,
        "crop": None,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "input": {"layout": layout, "shape": shape, "batch": "dynamic" if batch is None else batch,
                  "dtype": input_quantization[2] if input_quantization else "float32",
                  "quantization": quant(input_quantization, "q = clamp(round(x / scale) + zero_point, dtype range)")},
        "output": {"kind": "logits", "dtype": output_quantization[2] if output_quantization else "float32",
                   "quantization": quant(output_quantization, "logits = (q - zero_point) * scale"),
                   "then": "softmax for probabilities; classes in hwnas.classes"},
    }


def contract_json(contract: dict[str, Any]) -> str:
    return json.dumps(contract, sort_keys=True)


def parse_contract(metadata: dict[str, str], where: str) -> dict[str, Any]:
    """The contract of a file's metadata; a file without one (exported before it existed) is refused."""
    if CONTRACT_KEY not in metadata:
        raise ValueError(f"{where} has no {CONTRACT_KEY} metadata (exported by an older hwnas?); allowed: files "
                         "exported by hwnas with the deploy contract")
    contract: dict[str, Any] = json.loads(metadata[CONTRACT_KEY])
    if contract.get("version") != CONTRACT_VERSION:
        raise ValueError(f"{where}: deploy contract version {contract.get('version')}; allowed: {CONTRACT_VERSION}")
    return contract


def apply_contract(image: np.ndarray, contract: dict[str, Any]) -> np.ndarray:
    """uint8 image (H x W x C, or H x W for one channel) -> the model's input tensor (batch 1),
    by the contract alone. An image of another size than the source is resized from its own size
    with the contract's filter."""
    src = contract["source"]
    pixels = image[..., None] if image.ndim == 2 else image
    if pixels.shape[-1] != src["channels"]:
        raise ValueError(f"image has {pixels.shape[-1]} channels; the model takes {src['channels']} "
                         f"({src['channel_order']})")
    pixels = np.array(pixels, dtype=np.uint8)  # a copy: decoded images may be read-only
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    x = x * float(contract["scale"])
    layout, shape = contract["input"]["layout"], contract["input"]["shape"]
    size = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    resize = contract["resize"]
    if tuple(x.shape[2:]) != size:
        if resize is not None and (resize["method"] != "bilinear" or not resize["antialias"]):
            raise ValueError(f"resize {resize['method']} (antialias {resize['antialias']}) is not implemented here")
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(contract["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(contract["std"]).view(1, -1, 1, 1)
    out = ((x - mean) / std).numpy().astype(np.float32)
    if layout == "NHWC":
        out = np.ascontiguousarray(out.transpose(0, 2, 3, 1))
    q = contract["input"]["quantization"]
    if q is not None:
        info = np.iinfo(np.dtype(q["dtype"]))
        return np.clip(np.round(out / q["scale"]) + q["zero_point"], info.min, info.max).astype(q["dtype"])
    return out


def read_output(logits: np.ndarray, contract: dict[str, Any]) -> np.ndarray:
    """Float logits of the model's raw output (dequantized by the contract when integer)."""
    q = contract["output"]["quantization"]
    if q is None:
        return logits.astype(np.float32)
    return (logits.astype(np.float32) - q["zero_point"]) * q["scale"]
