"""The search space: a function of an Optuna trial that returns an :class:`ArchSpec`.

One source of truth for the space. Parameter names are stable (``resolution``, ``width``,
``s2.block``, ``s2.kernel``...), so ``optuna.trial.FixedTrial(trial.params)`` replays a trial.
The space never builds modules; it only decides channel counts (width multiplier, rounding).

>>> import optuna
>>> from nas.core.config import SpaceConfig, StageConfig
>>> space = SearchSpace(SpaceConfig(stages=(StageConfig(chs=16),)), in_chs=1, num_classes=10)
>>> params = {"resolution": 28, "width": 1.0, "s0.block": "ir", "s0.depth": 1, "s0.kernel": 3, "s0.expansion": 1}
>>> space.sample(optuna.trial.FixedTrial(params)).format()
'in_c1_r28-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-head_c128-fc_c10'
"""
from __future__ import annotations

from typing import Any

from nas.core.config import SpaceConfig
from nas.space.arch import ArchSpec, StageSpec, validate
from nas.space.blocks import make_divisible
from nas.space.kinds import Chooser, block_kind, check_space

__all__ = ["Chooser", "SearchSpace"]


class SearchSpace:
    """Samples architectures for a dataset with ``in_chs`` channels and ``num_classes`` classes."""

    def __init__(self, cfg: SpaceConfig, *, in_chs: int, num_classes: int) -> None:
        check_space(cfg)
        self.cfg = cfg
        self.in_chs = in_chs
        self.num_classes = num_classes

    def sample(self, trial: Chooser) -> ArchSpec:
        cfg = self.cfg
        resolution = trial.suggest_categorical("resolution", list(cfg.resolutions))
        width = trial.suggest_categorical("width", list(cfg.widths))
        stages = tuple(self._stage(trial, i, width) for i in range(len(cfg.stages)))
        spec = ArchSpec(in_chs=self.in_chs, resolution=resolution, stem_chs=make_divisible(cfg.stem_chs * width),
                        stem_stride=cfg.stem_stride, stages=stages,
                        # as MobileNetV2: the head is not narrowed below width 1.0
                        head_chs=make_divisible(cfg.head_chs * max(1.0, width)), num_classes=self.num_classes)
        validate(spec)
        return spec

    def _stage(self, trial: Chooser, index: int, width: float) -> StageSpec:
        stage_cfg = self.cfg.stages[index]
        p = f"s{index}."
        kind = trial.suggest_categorical(p + "block", list(stage_cfg.block_types or self.cfg.block_types))
        depth = trial.suggest_categorical(p + "depth", list(stage_cfg.depths))
        chs = stage_cfg.chs * width
        settings: dict[str, Any] = {"repeats": depth, "stride": stage_cfg.stride, "out_chs": make_divisible(chs)}
        settings.update(block_kind(kind).sample(trial, p, self.cfg, chs))
        return StageSpec(kind, **settings)
