"""Elastic conv + BatchNorm: one set of weights at the largest size, any smaller size a slice of it.

A forward pass at ``out`` channels and kernel ``k`` uses the first ``out`` output channels, the
first ``x.shape[1]`` input channels and the centred ``k x k`` window of the kernel (once-for-all's
elastic kernel, without its kernel transform). Block kinds compose these in their elastic
methods (:class:`nas.space.kinds.BlockKind`); the supernet (:mod:`nas.supernet`) holds them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.space.blocks import ConvBnAct, activation


class ElasticConvBn(nn.Module):
    """Conv (no bias) + BatchNorm + optional ReLU6/hard-swish at the largest size, run at any prefix."""

    def __init__(self, max_in: int, max_out: int, max_k: int = 1, *, stride: int = 1, depthwise: bool = False,
                 act: bool = True, hswish: bool = False) -> None:
        super().__init__()
        self.depthwise, self.stride, self.max_k = depthwise, stride, max_k
        self.conv = nn.Conv2d(max_in, max_out, max_k, stride, max_k // 2, groups=max_in if depthwise else 1,
                              bias=False)
        self.bn = nn.BatchNorm2d(max_out)
        self.act = activation(hswish) if act else nn.Identity()

    def weight(self, in_chs: int, out_chs: int, k: int) -> torch.Tensor:
        w = self.conv.weight[:out_chs] if self.depthwise else self.conv.weight[:out_chs, :in_chs]
        if k < self.max_k:
            start = (self.max_k - k) // 2
            w = w[:, :, start:start + k, start:start + k]
        return w

    def forward(self, x: torch.Tensor, out_chs: int, k: int = 1) -> torch.Tensor:
        in_chs = x.shape[1]
        out_chs = in_chs if self.depthwise else out_chs
        y = F.conv2d(x, self.weight(in_chs, out_chs, k), None, self.stride, k // 2, 1,
                     in_chs if self.depthwise else 1)
        bn = self.bn
        assert bn.running_mean is not None and bn.running_var is not None
        y = F.batch_norm(y, bn.running_mean[:out_chs], bn.running_var[:out_chs], bn.weight[:out_chs],
                         bn.bias[:out_chs], self.training, bn.momentum or 0.1, bn.eps)
        return self.act(y)

    @torch.no_grad()
    def export_into(self, target: ConvBnAct, in_chs: int, out_chs: int, k: int) -> None:
        """Copy the slices of this setting into ``target`` (a ConvBnAct of exactly that shape)."""
        target.conv.weight.copy_(self.weight(in_chs, out_chs, k))
        bn, src = target.bn, self.bn
        assert bn.running_mean is not None and bn.running_var is not None
        assert src.running_mean is not None and src.running_var is not None
        bn.weight.copy_(src.weight[:out_chs])
        bn.bias.copy_(src.bias[:out_chs])
        bn.running_mean.copy_(src.running_mean[:out_chs])
        bn.running_var.copy_(src.running_var[:out_chs])
