"""The supernet: one network whose subnetworks share weights, and their extraction as plain networks.

``Supernet(space)(x, spec)`` runs subnetwork ``spec`` (an :class:`~nas.space.arch.ArchSpec` of the
space): the first ``depth`` blocks of each stage, each at its kind, kernel, expansion and width.
:meth:`Supernet.extract` returns the ordinary :class:`nas.space.builder.Net` of ``spec`` holding
the supernet's slices: nothing downstream knows it came from a supernet.

>>> from nas.core.config import SpaceConfig, StageConfig
>>> space = SupernetSpace(SpaceConfig(stages=(StageConfig(chs=16),), block_types=("ir", "ds")), in_chs=1,
...                       num_classes=10)
>>> net = Supernet(space).eval()
>>> spec = space.smallest()
>>> x = torch.randn(2, 1, 28, 28)
>>> bool(torch.allclose(net(x, spec), net.extract(spec).eval()(x), atol=1e-5))
True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.space.arch import ArchSpec
from nas.space.builder import Net, build
from nas.space.blocks import ConvBnAct
from nas.supernet.elastic import ElasticBlock, ElasticConvBn
from nas.supernet.space import SupernetSpace, stage_kinds


class Supernet(nn.Module):
    """Stem, for each stage its deepest stack of block positions (one elastic block per kind the
    stage offers at each position), head and classifier, all at their largest size."""

    def __init__(self, space: SupernetSpace) -> None:
        super().__init__()
        self.space = space
        cfg = space.cfg
        self.stem = ElasticConvBn(space.in_chs, space.max_stem, 3, stride=cfg.stem_stride)
        self.stages = nn.ModuleList()
        for i, (stage, kinds) in enumerate(zip(cfg.stages, stage_kinds(cfg))):
            positions = nn.ModuleList()
            for j in range(max(stage.depths)):
                positions.append(nn.ModuleDict({kind: ElasticBlock(
                    kind, space.max_in(i, j), space.max_out[i], max_k=space.max_k, max_e=space.max_e,
                    stride=stage.stride if j == 0 else 1, hswish=space.hswish) for kind in kinds}))
            self.stages.append(positions)
        self.head = ElasticConvBn(space.max_out[-1], space.max_head)
        self.classifier = nn.Linear(space.max_head, space.num_classes)
        _initialise(self)

    def blocks_of(self, spec: ArchSpec) -> list[tuple[ElasticBlock, int, int, int]]:
        """The elastic blocks ``spec`` runs, each with its out channels, kernel and expansion."""
        out = []
        for i, stage in enumerate(spec.stages):
            positions = self.stages[i]
            assert isinstance(positions, nn.ModuleList)
            for j in range(stage.repeats):
                position = positions[j]
                assert isinstance(position, nn.ModuleDict)
                block = position[stage.kind]
                assert isinstance(block, ElasticBlock)
                out.append((block, stage.out_chs, stage.kernel, stage.exp_ratio))
        return out

    def forward(self, x: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        x = self.stem(x, spec.stem_chs, spec.stem_kernel)
        for block, out_chs, k, e in self.blocks_of(spec):
            x = block(x, out_chs, k, e)
        head = spec.head_chs or x.shape[1]
        x = F.adaptive_avg_pool2d(self.head(x, head), 1).flatten(1)
        return F.linear(x, self.classifier.weight[:, :head], self.classifier.bias)

    def extract(self, spec: ArchSpec) -> Net:
        """``spec`` as a plain network carrying this supernet's weights (BatchNorm statistics as
        the supernet holds them: re-estimate them, :func:`nas.supernet.inherit.recalibrate_bn`)."""
        self.space.check_covers(spec)
        model = build(spec)
        stem = model.stem[0]
        assert isinstance(stem, ConvBnAct) and isinstance(model.head, ConvBnAct)
        self.stem.export_into(stem, spec.in_chs, spec.stem_chs, spec.stem_kernel)
        in_chs = spec.stem_chs
        for (block, out_chs, k, e), target in zip(self.blocks_of(spec), model.blocks):
            block.export_into(target, in_chs, out_chs, k, e)
            in_chs = out_chs
        assert spec.head_chs is not None
        self.head.export_into(model.head, in_chs, spec.head_chs, 1)
        assert isinstance(model.classifier, nn.Linear)
        with torch.no_grad():
            model.classifier.weight.copy_(self.classifier.weight[:, :spec.head_chs])
            model.classifier.bias.copy_(self.classifier.bias)
        return model

    def reorder(self, optimizer: torch.optim.Optimizer | None = None) -> int:
        """Sort every block's hidden channels by importance; the number of blocks reordered."""
        e1 = 1 in self.space.cfg.exp_ratios
        return sum(m.reorder(optimizer, expansion_one=e1) for m in self.modules() if isinstance(m, ElasticBlock))


def _initialise(model: nn.Module) -> None:
    """As :func:`nas.space.builder.build` initialises a network."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
