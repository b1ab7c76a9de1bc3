"""MobileNet kinds: ``ir`` (MobileNetV2 inverted residual), ``fir`` (EfficientNet-EdgeTPU's fused
inverted residual) and ``ds`` (MobileNetV1 depthwise-separable conv); the kinds a supernet slices."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nas.space.blocks import ConvBnAct, FusedInvertedResidual, InvertedResidual, SqueezeExcite, depthwise_separable
from nas.space.kinds.base import BlockKind, ChannelGroup, Chooser, Coupling, ElasticLayers, is_pointwise
from nas.space.kinds.elastic import ElasticConvBn
from nas.space.spec import ArchError, StageSpec

if TYPE_CHECKING:
    from nas.core.config import SpaceConfig


def _sample_mobile(trial: Chooser, p: str, cfg: SpaceConfig, *, expansion: bool) -> dict[str, Any]:
    """Kernel, [expansion], SE and hard-swish, in the order the search has always asked them."""
    out: dict[str, Any] = {"kernel": trial.suggest_categorical(p + "kernel", list(cfg.kernels))}
    if expansion:
        out["exp_ratio"] = trial.suggest_categorical(p + "expansion", list(cfg.exp_ratios))
    out["se"] = _choose(trial, p + "se", cfg.se)
    out["hswish"] = _choose(trial, p + "hswish", cfg.hswish)
    return out


def _choose(trial: Chooser, name: str, options: tuple[bool, ...]) -> bool:
    """Sample a flag only when the config offers a choice; a fixed flag adds no parameter."""
    return options[0] if len(set(options)) == 1 else bool(trial.suggest_categorical(name, list(options)))


def _check_mid(stage: StageSpec, in_chs: int) -> None:
    if not stage.mid_chs:
        return
    name = stage.format()
    if stage.exp_ratio != 1:
        raise ArchError(f"{name!r}: give expanded channels as e or as m, not both (m goes with e1)")
    if stage.mid_chs % in_chs == 0:
        raise ArchError(f"{name!r}: {stage.mid_chs} expanded channels are {stage.mid_chs // in_chs}x the input "
                        f"{in_chs}; canonical: e{stage.mid_chs // in_chs} without m")


class InvertedResidualKind(BlockKind):
    name = "ir"
    summary = "MobileNetV2 inverted residual (no 1x1 expansion at e=1)"
    example = "ir_r2_k3_s2_e4_c24"
    required = ("r", "k", "s", "e", "c")
    optional = {"m": 0, "se": 0, "hs": 0}

    def validate(self, stage: StageSpec, in_chs: int) -> None:
        _check_mid(stage, in_chs)

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return InvertedResidual(in_chs, stage.out_chs, k=stage.kernel, stride=self.block_stride(stage, index),
                                mid_chs=stage.expanded(in_chs), se=stage.se, hswish=stage.hswish)

    def sample(self, trial: Chooser, prefix: str, cfg: SpaceConfig, chs: float) -> dict[str, Any]:
        return _sample_mobile(trial, prefix, cfg, expansion=True)

    def coupling(self, block: nn.Module, name: str) -> Coupling:
        assert isinstance(block, InvertedResidual)
        body = block.body
        if not is_pointwise(body[0]):
            return [], [f"{name}: expansion 1, its depthwise channels are the block input"]
        se = 2 if isinstance(body[2], SqueezeExcite) else None
        return [ChannelGroup(name, body, 0, None, 1, se, len(body) - 1, 1)], []

    def stream_output(self, block: nn.Module) -> ConvBnAct | None:
        assert isinstance(block, InvertedResidual)
        last = block.body[-1]
        assert isinstance(last, ConvBnAct)  # an inverted residual ends in its 1x1 projection
        return last

    def residual(self, block: nn.Module) -> bool:
        assert isinstance(block, InvertedResidual)
        return block.residual

    def pointwise_input(self, block: nn.Module) -> ConvBnAct | None:
        assert isinstance(block, InvertedResidual)
        first = block.body[0]
        return first if isinstance(first, ConvBnAct) and is_pointwise(first) else None

    def elastic_layers(self, max_in: int, max_out: int, *, max_k: int, max_e: int, stride: int,
                       hswish: bool) -> dict[str, ElasticConvBn]:
        max_mid = max_in * max_e
        return {"expand": ElasticConvBn(max_in, max_mid, hswish=hswish),
                "spatial": ElasticConvBn(max_mid, max_mid, max_k, stride=stride, depthwise=True, hswish=hswish),
                "project": ElasticConvBn(max_mid, max_out, act=False)}

    def elastic_forward(self, layers: ElasticLayers, x: torch.Tensor, out_chs: int, k: int, e: int,
                        stride: int) -> torch.Tensor:
        in_chs = x.shape[1]
        mid = in_chs * e
        h = layers["expand"](x, mid) if mid != in_chs else x
        y = layers["project"](layers["spatial"](h, mid, k), out_chs)
        return x + y if stride == 1 and in_chs == out_chs else y

    def elastic_export(self, layers: ElasticLayers, block: nn.Module, in_chs: int, out_chs: int, k: int,
                       e: int) -> None:
        convs = _convs(block)
        mid = in_chs * e
        if mid != in_chs:
            layers["expand"].export_into(convs.pop(0), in_chs, mid, 1)
        layers["spatial"].export_into(convs[0], mid, mid, k)
        layers["project"].export_into(convs[1], mid, out_chs, 1)

    def elastic_hidden(self, layers: ElasticLayers, *,
                       expansion_one: bool) -> tuple[list[ElasticConvBn], ElasticConvBn] | None:
        # at e=1 the depthwise conv reads the block input: its channels are not the block's to reorder
        return None if expansion_one else ([layers["expand"], layers["spatial"]], layers["project"])


class FusedInvertedResidualKind(BlockKind):
    name = "fir"
    summary = ("fused inverted residual (EfficientNet-EdgeTPU): full kxk conv to in*e (or m), 1x1 projection; "
               "ps1: the projection carries the stride; ns1: no residual add")
    example = "fir_r2_k3_s2_e3_c24"
    required = ("r", "k", "s", "e", "c")
    optional = {"m": 0, "se": 0, "hs": 0, "ps": 0, "ns": 0}

    def validate(self, stage: StageSpec, in_chs: int) -> None:
        _check_mid(stage, in_chs)

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return FusedInvertedResidual(in_chs, stage.out_chs, k=stage.kernel, stride=self.block_stride(stage, index),
                                     mid_chs=stage.expanded(in_chs), se=stage.se, hswish=stage.hswish,
                                     proj_stride=stage.proj_stride, no_skip=stage.no_skip)

    def sample(self, trial: Chooser, prefix: str, cfg: SpaceConfig, chs: float) -> dict[str, Any]:
        return _sample_mobile(trial, prefix, cfg, expansion=True)

    def coupling(self, block: nn.Module, name: str) -> Coupling:
        assert isinstance(block, FusedInvertedResidual)
        se = 1 if isinstance(block.body[1], SqueezeExcite) else None
        return [ChannelGroup(name, block.body, 0, None, None, se, len(block.body) - 1, 1)], []

    def elastic_layers(self, max_in: int, max_out: int, *, max_k: int, max_e: int, stride: int,
                       hswish: bool) -> dict[str, ElasticConvBn]:
        return {"spatial": ElasticConvBn(max_in, max_in * max_e, max_k, stride=stride, hswish=hswish),
                "project": ElasticConvBn(max_in * max_e, max_out, act=False)}

    def elastic_forward(self, layers: ElasticLayers, x: torch.Tensor, out_chs: int, k: int, e: int,
                        stride: int) -> torch.Tensor:
        in_chs = x.shape[1]
        y = layers["project"](layers["spatial"](x, in_chs * e, k), out_chs)
        return x + y if stride == 1 and in_chs == out_chs else y

    def elastic_export(self, layers: ElasticLayers, block: nn.Module, in_chs: int, out_chs: int, k: int,
                       e: int) -> None:
        convs = _convs(block)
        layers["spatial"].export_into(convs[0], in_chs, in_chs * e, k)
        layers["project"].export_into(convs[1], in_chs * e, out_chs, 1)

    def elastic_hidden(self, layers: ElasticLayers, *,
                       expansion_one: bool) -> tuple[list[ElasticConvBn], ElasticConvBn] | None:
        return [layers["spatial"]], layers["project"]


class DepthwiseSeparableKind(BlockKind):
    name = "ds"
    summary = "MobileNetV1 depthwise-separable conv"
    example = "ds_r2_k3_s2_c24"
    required = ("r", "k", "s", "c")
    optional = {"se": 0, "hs": 0}

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return depthwise_separable(in_chs, stage.out_chs, k=stage.kernel, stride=self.block_stride(stage, index),
                                   se=stage.se, hswish=stage.hswish)

    def sample(self, trial: Chooser, prefix: str, cfg: SpaceConfig, chs: float) -> dict[str, Any]:
        return _sample_mobile(trial, prefix, cfg, expansion=False)

    def coupling(self, block: nn.Module, name: str) -> Coupling:
        # no hidden channels: the depthwise conv reads the block input, the pointwise conv writes its output
        return [], []

    def elastic_layers(self, max_in: int, max_out: int, *, max_k: int, max_e: int, stride: int,
                       hswish: bool) -> dict[str, ElasticConvBn]:
        return {"spatial": ElasticConvBn(max_in, max_in, max_k, stride=stride, depthwise=True, hswish=hswish),
                "project": ElasticConvBn(max_in, max_out, hswish=hswish)}

    def elastic_forward(self, layers: ElasticLayers, x: torch.Tensor, out_chs: int, k: int, e: int,
                        stride: int) -> torch.Tensor:
        return layers["project"](layers["spatial"](x, x.shape[1], k), out_chs)

    def elastic_export(self, layers: ElasticLayers, block: nn.Module, in_chs: int, out_chs: int, k: int,
                       e: int) -> None:
        convs = _convs(block)
        layers["spatial"].export_into(convs[0], in_chs, in_chs, k)
        layers["project"].export_into(convs[1], in_chs, out_chs, 1)


def _convs(block: nn.Module) -> list[ConvBnAct]:
    """The conv + BN layers of a built ir/fir/ds block, in order (SE left out)."""
    body = getattr(block, "body", block)
    assert isinstance(body, nn.Sequential)
    return [m for m in body if isinstance(m, ConvBnAct)]


POSITION = 1  # where the table lists these kinds
KINDS = (InvertedResidualKind(), FusedInvertedResidualKind(), DepthwiseSeparableKind())
