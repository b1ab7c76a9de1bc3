"""Elastic layers and blocks: one set of weights at the largest size, any smaller size a slice of it.

A :class:`ElasticConvBn` holds the conv and BatchNorm of the largest setting; a forward pass at
``out`` channels and kernel ``k`` uses the first ``out`` output channels, the first ``x.shape[1]``
input channels and the centred ``k x k`` window of the kernel (once-for-all's elastic kernel,
without its kernel transform). Channels are prefixes, so the channels every subnetwork uses come
first: sandwich training and :meth:`ElasticBlock.reorder` keep them in importance order.

Blocks sliced here: ``ir`` (MobileNetV2), ``fir`` (fused inverted residual) and ``ds``
(depthwise-separable). :meth:`ElasticBlock.export_into` copies a setting's slices into the
ordinary block :func:`nas.space.builder.build` makes, so a subnetwork is a plain hwnas network.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.space.blocks import ConvBnAct, activation

# Block kinds a supernet slices. The others do not slice cleanly: grouped 1x1 convs and channel
# shuffles (sh, fb) tie every channel to its group, so a prefix of channels is no smaller network
# of the same kind; sh2 splits channels in halves; rb, rbn, vgg and fire have no elastic knobs here.
ELASTIC_KINDS = ("ir", "fir", "ds")
EXCLUDED_WHY = {
    "sh": "grouped 1x1 convs and the channel shuffle tie channels to groups: a channel prefix is no ShuffleNet unit",
    "fb": "grouped 1x1 convs and the channel shuffle tie channels to groups",
    "sh2": "the channel split and shuffle pair the two halves of the channels",
    "rb": "not elastic in this supernet (no kernel or expansion knob)",
    "rbn": "not elastic in this supernet (no kernel or expansion knob)",
    "vgg": "not elastic in this supernet (no kernel or expansion knob)",
    "fire": "not elastic in this supernet (fixed squeeze and expand ratios)",
}


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


class ElasticBlock(nn.Module):
    """One block position of a stage, of one kind, at its largest setting."""

    def __init__(self, kind: str, max_in: int, max_out: int, *, max_k: int, max_e: int, stride: int,
                 hswish: bool = False) -> None:
        super().__init__()
        self.kind, self.stride = kind, stride
        max_mid = max_in * max_e
        if kind == "ir":
            self.expand = ElasticConvBn(max_in, max_mid, hswish=hswish)
            self.spatial = ElasticConvBn(max_mid, max_mid, max_k, stride=stride, depthwise=True, hswish=hswish)
            self.project = ElasticConvBn(max_mid, max_out, act=False)
        elif kind == "fir":
            self.spatial = ElasticConvBn(max_in, max_mid, max_k, stride=stride, hswish=hswish)
            self.project = ElasticConvBn(max_mid, max_out, act=False)
        elif kind == "ds":
            self.spatial = ElasticConvBn(max_in, max_in, max_k, stride=stride, depthwise=True, hswish=hswish)
            self.project = ElasticConvBn(max_in, max_out, hswish=hswish)
        else:
            raise ValueError(f"block kind {kind!r} is not elastic; elastic kinds: {', '.join(ELASTIC_KINDS)}")

    def forward(self, x: torch.Tensor, out_chs: int, k: int, e: int) -> torch.Tensor:
        in_chs = x.shape[1]
        mid = in_chs * e
        if self.kind == "ir":
            h = self.expand(x, mid) if mid != in_chs else x
            y = self.project(self.spatial(h, mid, k), out_chs)
        elif self.kind == "fir":
            y = self.project(self.spatial(x, mid, k), out_chs)
        else:
            y = self.project(self.spatial(x, in_chs, k), out_chs)
        return x + y if self.stride == 1 and in_chs == out_chs and self.kind != "ds" else y

    def export_into(self, block: nn.Module, in_chs: int, out_chs: int, k: int, e: int) -> None:
        """Copy this setting's weights into the block :func:`nas.space.builder.build` made for it."""
        mid = in_chs * e
        body = block.body if self.kind in ("ir", "fir") else block
        assert isinstance(body, nn.Sequential)
        layers = [m for m in body if isinstance(m, ConvBnAct)]
        if self.kind == "ir":
            if mid != in_chs:
                self.expand.export_into(layers.pop(0), in_chs, mid, 1)
            self.spatial.export_into(layers[0], mid, mid, k)
            self.project.export_into(layers[1], mid, out_chs, 1)
        elif self.kind == "fir":
            self.spatial.export_into(layers[0], in_chs, mid, k)
            self.project.export_into(layers[1], mid, out_chs, 1)
        else:
            self.spatial.export_into(layers[0], in_chs, in_chs, k)
            self.project.export_into(layers[1], in_chs, out_chs, 1)

    def hidden_layers(self, *, ir_reorderable: bool) -> tuple[list[ElasticConvBn], ElasticConvBn] | None:
        """The layers writing this block's hidden channels and the layer reading them; None where
        the hidden channels are tied to the block's input (ds; ir where it may skip its expansion,
        e=1, so that its depthwise conv reads the input channels directly)."""
        if self.kind == "fir":
            return [self.spatial], self.project
        if self.kind == "ir" and ir_reorderable:
            return [self.expand, self.spatial], self.project
        return None

    @torch.no_grad()
    def reorder(self, optimizer: torch.optim.Optimizer | None = None, *, ir_reorderable: bool = False) -> bool:
        """Sort the hidden channels by importance (L1 norm of the weights reading them, as once-for-all
        does), permuting the optimizer's state with them; True when something was reordered."""
        layers = self.hidden_layers(ir_reorderable=ir_reorderable)
        if layers is None:
            return False
        writers, reader = layers
        order = torch.argsort(reader.conv.weight.abs().sum(dim=(0, 2, 3)), descending=True)
        for layer in writers:
            for p in (layer.conv.weight, layer.bn.weight, layer.bn.bias):
                _permute(p, 0, order, optimizer)
            for buf in (layer.bn.running_mean, layer.bn.running_var):
                assert buf is not None
                buf.copy_(buf[order])
        _permute(reader.conv.weight, 1, order, optimizer)
        return True


def _permute(p: torch.Tensor, dim: int, order: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
    p.data.copy_(p.data.index_select(dim, order))
    state = optimizer.state.get(p, {}) if optimizer is not None else {}
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.shape == p.shape:
            value.copy_(value.index_select(dim, order))
