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

import math
from collections.abc import Sequence
from typing import Any, Protocol

from nas.core.config import SpaceConfig
from nas.space.arch import ArchSpec, StageSpec, validate
from nas.space.blocks import make_divisible

CHANNEL_DIVISOR = 8


class Chooser(Protocol):
    """What the space asks of a trial: an Optuna trial, a FixedTrial, or a supernet's policy."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        ...


class SearchSpace:
    """Samples architectures for a dataset with ``in_chs`` channels and ``num_classes`` classes."""

    def __init__(self, cfg: SpaceConfig, *, in_chs: int, num_classes: int) -> None:
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
        common: dict[str, Any] = {"repeats": depth, "stride": stage_cfg.stride, "out_chs": make_divisible(stage_cfg.chs * width)}
        if kind in ("ir", "fir", "ds", "fb"):
            common["kernel"] = trial.suggest_categorical(p + "kernel", list(self.cfg.kernels))
        if kind in ("ir", "fir", "fb"):
            common["exp_ratio"] = trial.suggest_categorical(p + "expansion", list(self.cfg.exp_ratios))
        if kind in ("ir", "fir", "ds"):
            common["se"] = _choose(trial, p + "se", self.cfg.se)
            common["hswish"] = _choose(trial, p + "hswish", self.cfg.hswish)
        if kind == "fb":
            # Channels are multiples of 8, so groups dividing 8 always divide them.
            common["groups"] = trial.suggest_categorical(p + "fb_groups", [g for g in self.cfg.groups if 8 % g == 0])
        if kind == "sh":
            groups = trial.suggest_categorical(p + "groups", list(self.cfg.groups))
            # The unit's bottleneck (out/4) and both group convs must divide by the groups.
            divisor = CHANNEL_DIVISOR * 4 * groups // math.gcd(CHANNEL_DIVISOR, 4 * groups)
            common.update(groups=groups, out_chs=make_divisible(stage_cfg.chs * width, divisor))
        return StageSpec(kind, **common)


def _choose(trial: Chooser, name: str, options: tuple[bool, ...]) -> bool:
    """Sample a flag only when the config offers a choice; a fixed flag adds no parameter."""
    return options[0] if len(set(options)) == 1 else bool(trial.suggest_categorical(name, list(options)))
