"""Quantization-aware training: fine-tune with int8 fake quantization so the weights learn to
survive rounding, for when post-training quantization loses accuracy.

The scheme simulated is the one :func:`compress.quantize.quantize_int8_static` deploys: weights
symmetric per output channel or per tensor (scale = max|w| / 127), conv and linear inputs
asymmetric 8-bit per tensor (the same grid for uint8 and int8, shifted by 128)
(min/max tracked as an exponential moving average). Training runs on the BatchNorm-folded network
(BN frozen into the convs, as deployed). Export goes through the same static QDQ quantization,
calibrated on training images, so the file is a regular QDQ ONNX model; the activation ranges are
recalibrated there rather than copied from training (stated in the file's metadata). The int8
TFLite routes quantize weights and activations the same way (symmetric per-channel weights,
asymmetric per-tensor activations), so QAT-tuned weights serve them too (:func:`qat_tuned`).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from compress.distill import fine_tune
from nas.data.splits import Preprocess
from nas.space.builder import fuse_bn


class _FakeQuant(nn.Module):
    """Wraps a conv or linear layer: fake-quantized input (per tensor) and weight (per channel)."""

    lo: torch.Tensor
    hi: torch.Tensor
    seen: torch.Tensor

    def __init__(self, layer: nn.Conv2d | nn.Linear, momentum: float = 0.1, per_channel: bool = True) -> None:
        super().__init__()
        self.layer = layer
        self.per_channel = per_channel
        self.momentum = momentum
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            lo, hi = x.detach().min(), x.detach().max()
            if not bool(self.seen):
                self.lo.copy_(lo)
                self.hi.copy_(hi)
                self.seen.fill_(True)
            else:
                self.lo.lerp_(lo, self.momentum)
                self.hi.lerp_(hi, self.momentum)
        lo, hi = torch.minimum(self.lo, torch.zeros(())), torch.maximum(self.hi, torch.zeros(()))
        scale = float(torch.clamp((hi - lo) / 255.0, min=1e-8))
        zero_point = int(torch.clamp(torch.round(-128 - lo / scale), -128, 127))
        xq = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, -128, 127)
        w = self.layer.weight
        w_max = w.detach().abs().flatten(1).max(1).values
        if not self.per_channel:
            w_max = w_max.max().expand_as(w_max)
        w_scale = torch.clamp(w_max / 127.0, min=1e-8)
        wq = torch.fake_quantize_per_channel_affine(w, w_scale, torch.zeros_like(w_scale, dtype=torch.int32), 0,
                                                    -127, 127)
        if isinstance(self.layer, nn.Conv2d):
            c = self.layer
            return nn.functional.conv2d(xq, wq, c.bias, c.stride, c.padding, c.dilation, c.groups)
        return nn.functional.linear(xq, wq, self.layer.bias)


def prepare(model: nn.Module, *, per_channel: bool = True) -> nn.Module:
    """Fold BatchNorm and wrap every conv and linear layer in fake quantization, in place."""
    fuse_bn(model)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (nn.Conv2d, nn.Linear)):
                setattr(module, child_name, _FakeQuant(child, per_channel=per_channel))
    return model


def strip(model: nn.Module) -> nn.Module:
    """Remove the fake quantization, in place, leaving the trained float layers for export."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, _FakeQuant):
                setattr(module, child_name, child.layer)
    return model


def qat_fine_tune(model: nn.Module, teacher: nn.Module, images: np.ndarray, labels: np.ndarray, *,
                  preprocess: Preprocess, resolution: int, iterations: int, lr: float, per_channel: bool,
                  seed: int) -> nn.Module:
    """QAT in place: fold BatchNorm, fine-tune ``iterations`` steps with int8 fake quantization,
    distilled from ``teacher`` (half the loss from its outputs, half from the labels), then strip
    the fake quantization; returns ``model`` (float, BatchNorm folded)."""
    prepare(model, per_channel=per_channel)
    fine_tune(model, images, labels, preprocess=preprocess, resolution=resolution, iterations=iterations, lr=lr,
              seed=seed, teacher=teacher, alpha=0.5)
    return strip(model).eval()


def qat_tuned(model: nn.Module, images: np.ndarray, labels: np.ndarray, *, preprocess: Preprocess, resolution: int,
              iterations: int, lr: float, per_channel: bool, seed: int) -> nn.Module:
    """A QAT-tuned copy of the trained float ``model`` (distilled from it); ``model`` is unchanged."""
    return qat_fine_tune(copy.deepcopy(model), copy.deepcopy(model).eval(), images, labels, preprocess=preprocess,
                         resolution=resolution, iterations=iterations, lr=lr, per_channel=per_channel, seed=seed)
