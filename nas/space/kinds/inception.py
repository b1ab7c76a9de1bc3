"""GoogLeNet's kinds: ``inc``, the inception module, and ``cv``, a plain conv + BN + ReLU (the
convs of GoogLeNet's stem after its first)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nas.space.blocks import ConvBnAct, make_divisible
from nas.space.kinds.base import BlockKind, ChannelGroup, Chooser, Coupling
from nas.space.spec import ArchError, StageSpec

if TYPE_CHECKING:
    from nas.core.config import SpaceConfig

BRANCH_TOKENS = ("o", "tr", "t", "fr", "f", "pp")  # GoogLeNet's Table 1 columns, in its order
_BETWEEN_BLOCKS = "its channels are the next block's input (between blocks)"


def _conv_relu(in_chs: int, out_chs: int, k: int, *, stride: int = 1) -> list[nn.Module]:
    return [ConvBnAct(in_chs, out_chs, k, stride=stride, act=False), nn.ReLU(inplace=True)]


class Inception(nn.Module):
    """GoogLeNet's inception module: [a 3x3 stride-2 ceil-mode max pool when ``pool``], then four
    branches on the same input, concatenated: a 1x1 conv to ``one``; a 1x1 reduce to
    ``three_reduce`` then a 3x3 conv to ``three``; a 1x1 reduce to ``five_reduce`` then a kxk conv
    to ``five`` (k = 5 in the paper, 3 in torchvision's model); a 3x3 stride-1 max pool then a 1x1
    projection to ``pool_proj``. Every conv: BN (folded at export) and ReLU."""

    def __init__(self, in_chs: int, *, one: int, three_reduce: int, three: int, five_reduce: int, five: int,
                 pool_proj: int, k: int, pool: bool) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True) if pool else nn.Identity()
        self.b1 = nn.Sequential(*_conv_relu(in_chs, one, 1))
        self.b3 = nn.Sequential(*_conv_relu(in_chs, three_reduce, 1), *_conv_relu(three_reduce, three, 3))
        self.b5 = nn.Sequential(*_conv_relu(in_chs, five_reduce, 1), *_conv_relu(five_reduce, five, k))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), *_conv_relu(in_chs, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


class InceptionKind(BlockKind):
    name = "inc"
    summary = ("GoogLeNet's inception module: 1x1 (o); 1x1 (tr) -> 3x3 (t); 1x1 (fr) -> kxk (f); 3x3 max pool "
               "-> 1x1 (pp); concatenated, c = o + t + f + pp; at s2 a 3x3 stride-2 max pool before it")
    example = "inc_r2_k5_s2_c64_o16_tr24_t32_fr4_f8_pp8"
    required = ("r", "k", "s", "c", *BRANCH_TOKENS)
    limits = {token: 16384 for token in BRANCH_TOKENS}
    elastic_why = "four branches of fixed widths: no elastic knob in this supernet"

    def validate(self, stage: StageSpec, in_chs: int) -> None:
        total = sum(stage.get(t) for t in ("o", "t", "f", "pp"))
        if stage.out_chs != total:
            raise ArchError(f"{stage.format()!r}: channels c{stage.out_chs} must be the concatenated branches "
                            f"o + t + f + pp = {total}")

    def halve(self, size: int) -> int:
        return -(-(size - 3) // 2) + 1  # a 3x3 stride-2 pool in ceil mode

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        o, tr, t, fr, f, pp = (stage.get(token) for token in BRANCH_TOKENS)
        return Inception(in_chs, one=o, three_reduce=tr, three=t, five_reduce=fr, five=f, pool_proj=pp,
                         k=stage.kernel, pool=self.block_stride(stage, index) == 2)

    def sample(self, trial: Chooser, prefix: str, cfg: SpaceConfig, chs: float) -> dict[str, Any]:
        """The kxk branch's kernel; branch widths in inception 3a's proportions of the stage's
        channels (1/4, 3/8 -> 1/2, 1/16 -> 1/8, 1/8)."""
        kernel = trial.suggest_categorical(prefix + "kernel", list(cfg.kernels))
        c = make_divisible(chs)  # a multiple of 8, so every share but the 1/16 is whole
        counts = (c // 4, 3 * c // 8, c // 2, max(1, c // 16), c // 8, c // 8)
        return {"kernel": kernel, "extra": tuple(zip(BRANCH_TOKENS, counts))}

    def coupling(self, block: nn.Module, name: str) -> Coupling:
        # each reduce conv's output is read by its branch's conv alone; the concatenated outputs
        # are between blocks
        assert isinstance(block, Inception)
        return [ChannelGroup(f"{name}.b3", block.b3, 0, None, None, None, 2, 1),
                ChannelGroup(f"{name}.b5", block.b5, 0, None, None, None, 2, 1)], []


class ConvKind(BlockKind):
    name = "cv"
    summary = "plain kxk conv + BN + ReLU, r of them, the first strided (GoogLeNet's second and third convs)"
    example = "cv_r2_k3_s2_c32"
    required = ("r", "k", "s", "c")
    pruning_why = f"plain conv, {_BETWEEN_BLOCKS}"
    elastic_why = "a plain conv: no kernel or expansion knob in this supernet"

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        return nn.Sequential(*_conv_relu(in_chs, stage.out_chs, stage.kernel, stride=self.block_stride(stage, index)))

    def sample(self, trial: Chooser, prefix: str, cfg: SpaceConfig, chs: float) -> dict[str, Any]:
        return {"kernel": trial.suggest_categorical(prefix + "kernel", list(cfg.kernels))}


KINDS = (InceptionKind(), ConvKind())
