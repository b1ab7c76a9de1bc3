"""FBNet's ops as HW-NAS-Bench builds them: ``fb`` (1x1 expansion conv even at e=1, grouped 1x1s,
shuffle) and ``skip`` (identity, or a strided 1x1 conv + BN where the shape changes)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from nas.core.schema import check
from nas.space.blocks import ConvBnAct, FBNetBlock, skip
from nas.space.kinds.base import CHANNEL_DIVISOR, BlockKind, Chooser, Coupling, is_pointwise
from nas.space.kinds.shuffle import shuffled_coupling
from nas.space.spec import ArchError, StageSpec

if TYPE_CHECKING:
    from nas.core.config import SpaceConfig


class FBNetKind(BlockKind):
    name = "fb"
    summary = "FBNet block as HW-NAS-Bench builds it (1x1 expansion conv even at e=1, grouped 1x1s)"
    example = "fb_r2_k3_s2_e3_g2_c32"
    required = ("r", "k", "s", "e", "g", "c")
    elastic_why = "grouped 1x1 convs and the channel shuffle tie channels to groups"

    def validate(self, stage: StageSpec, in_chs: int) -> None:
        e, g, out = stage.exp_ratio, stage.groups, stage.out_chs
        if in_chs * e % g or out * e % g or out % g:
            raise ArchError(f"{stage.format()!r}: expanded channels {in_chs}*{e} and output {out} must "
                            f"divide by groups {g}")

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return FBNetBlock(in_chs, stage.out_chs, k=stage.kernel, stride=self.block_stride(stage, index),
                          exp_ratio=stage.exp_ratio, groups=stage.groups)

    def sample(self, trial: Chooser, prefix: str, cfg: SpaceConfig, chs: float) -> dict[str, Any]:
        kernel = trial.suggest_categorical(prefix + "kernel", list(cfg.kernels))
        exp_ratio = trial.suggest_categorical(prefix + "expansion", list(cfg.exp_ratios))
        # Channels are multiples of 8, so groups dividing 8 always divide them.
        groups = trial.suggest_categorical(prefix + "fb_groups",
                                           [g for g in cfg.groups if CHANNEL_DIVISOR % g == 0])
        return {"kernel": kernel, "exp_ratio": exp_ratio, "groups": groups}

    def check_space(self, cfg: SpaceConfig) -> None:
        check(any(CHANNEL_DIVISOR % g == 0 for g in cfg.groups), "space.groups", cfg.groups,
              f"lists with a divisor of {CHANNEL_DIVISOR} (1, 2, 4, 8) when {self.name} blocks are searched")

    def coupling(self, block: nn.Module, name: str) -> Coupling:
        assert isinstance(block, FBNetBlock)
        return shuffled_coupling(block.body, name)

    def hwnasbench_key(self, stage: StageSpec, where: str, stride: int) -> str | None:
        return (f"ConvBlock_{where}_exp{stage.exp_ratio}_kernel{stage.kernel}_stride{stride}"
                f"_group{stage.groups}")


class SkipKind(BlockKind):
    name = "skip"
    summary = "FBNet's skip op: identity, or a strided 1x1 conv + BN where the shape changes"
    example = "skip_s2_c32"
    required = ("s", "c")
    searchable = False  # a choice of FBNet's op table (nas.space.zoo.fbnet), not a space's block type
    elastic_why = "FBNet's skip op has no elastic knob"

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return skip(in_chs, stage.out_chs, stride=self.block_stride(stage, index))

    def coupling(self, block: nn.Module, name: str) -> Coupling:
        # identity or a single conv: no channels inside the block
        return [], []

    def pointwise_input(self, block: nn.Module) -> ConvBnAct | None:
        return block if isinstance(block, ConvBnAct) and is_pointwise(block) else None

    def hwnasbench_key(self, stage: StageSpec, where: str, stride: int) -> str | None:
        return f"Skip_{where}_stride{stride}"


POSITION = 3  # where the table lists these kinds
KINDS = (FBNetKind(), SkipKind())
