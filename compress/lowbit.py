"""4-bit weights per layer group, for memory budgets (the Edge TPU's 8 MB, a small flash).

Weights of the chosen groups are rounded to 15 symmetric levels per output channel
(scale = max|w| / 7) on the BatchNorm-folded network, before the static int8 export. The file
still stores them as int8 (onnxruntime has no 4-bit convolution), so it runs them in 8 bits; the
memory model counts them at 4 bits, which is what a runtime with 4-bit storage would hold. The
report and trial attributes say so.

Groups: ``stem``, ``stage<i>`` (the blocks of the i-th stage of the architecture, from 0), and
``head`` (the head conv and the classifier).
"""
from __future__ import annotations

import torch
from torch import nn

from nas.core.errors import UserError
from nas.space.arch import ArchSpec
from nas.space.builder import Net, fuse_bn

BITS = (8, 4)
NOTE = ("4-bit groups are counted at 4 bits per weight in weight_mb; the ONNX file stores and onnxruntime runs "
        "them as int8 restricted to 15 levels per output channel")


def group_names(spec: ArchSpec) -> list[str]:
    return ["stem", *(f"stage{i}" for i in range(len(spec.stages))), "head"]


def weight_layers(model: Net, spec: ArchSpec) -> dict[str, list[nn.Conv2d | nn.Linear]]:
    """The conv and linear layers of each group."""
    def layers(*modules: nn.Module) -> list[nn.Conv2d | nn.Linear]:
        return [m for root in modules for m in root.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    out = {"stem": layers(model.stem)}
    blocks = list(model.blocks)
    start = 0
    for i, stage in enumerate(spec.stages):
        out[f"stage{i}"] = layers(*blocks[start:start + stage.repeats])
        start += stage.repeats
    out["head"] = layers(model.head, model.classifier)
    return out


def apply_weight_bits(model: Net, spec: ArchSpec, bits: dict[str, int]) -> dict[str, int]:
    """Fold BatchNorm, then round the weights of every group given 4 bits to 15 levels per output
    channel, in place. Returns the weight elements stored at 4 bits."""
    allowed = group_names(spec)
    for name, b in bits.items():
        if name not in allowed:
            raise UserError(f"quantize.weight_bits: unknown group {name!r}; allowed: {', '.join(allowed)}")
        if b not in BITS:
            raise UserError(f"quantize.weight_bits.{name}: {b} bits not allowed; allowed: 8, 4")
    fuse_bn(model)
    groups = weight_layers(model, spec)
    low = {}
    with torch.no_grad():
        for name, b in bits.items():
            if b != 4:
                continue
            for layer in groups[name]:
                w = layer.weight
                scale = w.abs().flatten(1).max(1).values.clamp_min(1e-12) / 7
                shape = (-1,) + (1,) * (w.ndim - 1)
                w.copy_(torch.clamp(torch.round(w / scale.view(shape)), -7, 7) * scale.view(shape))
            low[name] = sum(layer.weight.numel() for layer in groups[name])
    return low
