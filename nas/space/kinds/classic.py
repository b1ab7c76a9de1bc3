"""The classic CNNs' kinds: ``rb`` and ``rbn`` (ResNet basic and bottleneck blocks, v1.5), ``vgg``
(VGG's plain 3x3 conv + ReLU, a 2x2 max pool after the last at s2) and ``fire`` (SqueezeNet's fire
module, a 3x3 stride-2 ceil-mode max pool before the first at s2)."""
from __future__ import annotations

from torch import nn

from nas.space.blocks import Fire, ResidualBlock, VGGConv
from nas.space.kinds.base import BlockKind, ChannelGroup, Coupling
from nas.space.spec import ArchError, StageSpec

_NO_KNOB = "not elastic in this supernet (no kernel or expansion knob)"


class ResidualKind(BlockKind):
    name = "rb"
    summary = "ResNet basic block (two 3x3 convs, residual add; strided 1x1 conv + BN shortcut where the shape changes)"
    example = "rb_r2_s2_c32"
    required = ("r", "s", "c")
    elastic_why = _NO_KNOB
    bottleneck = False

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return ResidualBlock(in_chs, stage.out_chs, stride=self.block_stride(stage, index), bottleneck=self.bottleneck)

    def coupling(self, block: nn.Module, name: str) -> Coupling:
        # the channels between the convs of a ResNet block: each conv's output, read by the next
        assert isinstance(block, ResidualBlock)
        body = block.body
        return [ChannelGroup(f"{name}.body.{p}", body, p, None, None, None, p + 2, 1)
                for p in range(0, len(body) - 2, 2)], []


class BottleneckKind(ResidualKind):
    name = "rbn"
    summary = "ResNet bottleneck block (1x1 to c/4, 3x3 carrying the stride as ResNet v1.5, 1x1 to c)"
    example = "rbn_r2_s2_c64"
    bottleneck = True

    def validate(self, stage: StageSpec, in_chs: int) -> None:
        if stage.out_chs % 4:
            raise ArchError(f"{stage.format()!r}: channels {stage.out_chs} must divide by 4 (the bottleneck is a "
                            "quarter of them)")


class VGGKind(BlockKind):
    name = "vgg"
    summary = "VGG's 3x3 conv + ReLU, r of them; at s2 a 2x2 max pool after the last"
    example = "vgg_r2_s2_c32"
    required = ("r", "s", "c")
    stride_at_end = True
    pruning_why = "VGG conv, its channels are the next block's input (between blocks)"
    elastic_why = _NO_KNOB

    def halve(self, size: int) -> int:
        return size // 2  # a 2x2 pool without padding

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return VGGConv(in_chs, stage.out_chs, pool=stage.stride == 2 and index == stage.repeats - 1)


class FireKind(BlockKind):
    name = "fire"
    summary = "SqueezeNet's fire module (1x1 squeeze to c/8, 1x1 and 3x3 expands of c/2, concatenated)"
    example = "fire_r2_s2_c64"
    required = ("r", "s", "c")
    pruning_why = "fire module, its squeeze channels feed two expand convs"
    elastic_why = "not elastic in this supernet (fixed squeeze and expand ratios)"

    def validate(self, stage: StageSpec, in_chs: int) -> None:
        if stage.out_chs % 8:
            raise ArchError(f"{stage.format()!r}: channels {stage.out_chs} must divide by 8 (squeeze c/8, two "
                            "expands of c/2)")

    def halve(self, size: int) -> int:
        return -(-(size - 3) // 2) + 1  # a 3x3 stride-2 pool in ceil mode

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return Fire(in_chs, stage.out_chs, pool=self.block_stride(stage, index) == 2)


POSITION = 4  # where the table lists these kinds
KINDS = (ResidualKind(), BottleneckKind(), VGGKind(), FireKind())
