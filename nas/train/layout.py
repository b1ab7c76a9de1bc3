"""Memory layout of a network's tensors: ``channels_last`` (NHWC) makes convolutions faster on CPUs
and GPUs; the contiguous (NCHW) layout is what export and other code expect back.

>>> from torch import nn
>>> to_contiguous(to_channels_last(nn.Conv2d(1, 2, 3))).weight.is_contiguous()
True
"""
from __future__ import annotations

import torch
from torch import nn


def to_channels_last(module: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """``module`` (in place) in channels_last, on ``device`` when given."""
    return module.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format, which Module.to takes


def to_contiguous(module: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """``module`` (in place) back in the contiguous NCHW layout, on ``device`` when given."""
    return module.to(device=device, memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # as above
