"""ShuffleNet kinds: ``sh`` (ShuffleNetV1 unit: group 1x1 convs, channel shuffle, bottleneck out/4)
and ``sh2`` (ShuffleNetV2 unit: channel split, concat, shuffle)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from torch import nn

from nas.space.blocks import ChannelShuffle, ShuffleUnit, ShuffleV2Unit, make_divisible, shuffle_mid_chs
from nas.space.kinds.base import CHANNEL_DIVISOR, BlockKind, ChannelGroup, Chooser, Coupling
from nas.space.spec import ArchError, StageSpec

if TYPE_CHECKING:
    from nas.core.config import SpaceConfig

_GROUPED_WHY = "grouped 1x1 convs and the channel shuffle tie channels to groups"


def shuffled_coupling(seq: nn.Sequential, name: str) -> Coupling:
    """Grouped 1x1 -> [shuffle] -> depthwise -> grouped 1x1 (ShuffleNetV1 units, FBNet blocks):
    exact when the hidden channels divide by groups^2 (the slot rule of :mod:`compress.coupling`)."""
    shuffle = seq[1]
    g = shuffle.groups if isinstance(shuffle, ChannelShuffle) else 1
    group = ChannelGroup(name, seq, 0, 1, 2, None, 3, g)
    if g > 1 and group.channels % (g * g):
        return [], [f"{name}: {group.channels} hidden channels do not divide by groups^2 = {g * g}"]
    return [group], []


class ShuffleKind(BlockKind):
    name = "sh"
    summary = "ShuffleNetV1 unit (group 1x1 convs, channel shuffle, bottleneck out/4); fg0: first 1x1 ungrouped"
    example = "sh_r2_s2_g2_c32"
    required = ("r", "s", "g", "c")
    optional = {"fg": 1}
    elastic_why = f"{_GROUPED_WHY}: a channel prefix is no ShuffleNet unit"

    def validate(self, stage: StageSpec, in_chs: int) -> None:
        out, g, mid = stage.out_chs, stage.groups, shuffle_mid_chs(stage.out_chs)
        if out % g or mid < 1 or mid % g:
            raise ArchError(f"{stage.format()!r}: channels {out} and bottleneck {out}//4={mid} must divide by "
                            f"groups {g}")

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return ShuffleUnit(in_chs, stage.out_chs, stride=self.block_stride(stage, index), groups=stage.groups,
                           first_grouped=stage.first_grouped or index > 0)

    def sample(self, trial: Chooser, prefix: str, cfg: SpaceConfig, chs: float) -> dict[str, Any]:
        groups = trial.suggest_categorical(prefix + "groups", list(cfg.groups))
        # The unit's bottleneck (out/4) and both group convs must divide by the groups.
        divisor = CHANNEL_DIVISOR * 4 * groups // math.gcd(CHANNEL_DIVISOR, 4 * groups)
        return {"groups": groups, "out_chs": make_divisible(chs, divisor)}

    def coupling(self, block: nn.Module, name: str) -> Coupling:
        assert isinstance(block, ShuffleUnit)
        return shuffled_coupling(block.branch, name)


class ShuffleV2Kind(BlockKind):
    name = "sh2"
    summary = "ShuffleNetV2 unit (channel split, concat, shuffle)"
    example = "sh2_r2_s2_c32"
    required = ("r", "s", "c")
    elastic_why = "the channel split and shuffle pair the two halves of the channels"

    def validate(self, stage: StageSpec, in_chs: int) -> None:
        if stage.out_chs % 2:
            raise ArchError(f"{stage.format()!r}: channels {stage.out_chs} must be even (the unit splits them in two)")

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return ShuffleV2Unit(in_chs, stage.out_chs, stride=self.block_stride(stage, index))

    def coupling(self, block: nn.Module, name: str) -> Coupling:
        assert isinstance(block, ShuffleV2Unit)
        return [ChannelGroup(f"{name}.right", block.right, 0, None, 1, None, 2, 1)], []


POSITION = 2  # where the table lists these kinds
KINDS = (ShuffleKind(), ShuffleV2Kind())
