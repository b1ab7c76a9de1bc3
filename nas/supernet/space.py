"""The space a supernet covers: the search space of a config, its largest and smallest members,
random members, and the check that an architecture lies inside it.

Subnetworks are drawn through :class:`nas.space.sampler.SearchSpace` itself (with a policy in
place of an Optuna trial), so a subnetwork's arch string is exactly the one a per-trial search
would give the same choices.

>>> from nas.core.config import SpaceConfig, StageConfig
>>> space = SupernetSpace(SpaceConfig(stages=(StageConfig(chs=16, depths=(1, 2)),), block_types=("ir",)),
...                       in_chs=1, num_classes=10)
>>> space.largest().format()
'in_c1_r28-stem_k3_s1_c16-ir_r2_k7_s1_e6_c16-head_c128-fc_c10'
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.core.config import SpaceConfig
from nas.core.errors import UserError
from nas.space.arch import ArchSpec
from nas.space.blocks import make_divisible
from nas.space.kinds import block_kind, check_space, elastic_kinds
from nas.space.sampler import SearchSpace

Policy = Callable[[str, list[Any]], Any]


@dataclass
class PolicyChooser:
    """Answers the space's questions with ``policy(name, choices)``; ``params`` records the answers
    under the same names an Optuna trial would hold."""

    policy: Policy
    params: dict[str, Any] = field(default_factory=dict)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self.policy(name, list(choices))
        self.params[name] = value
        return value


def _extreme(pick: Callable[[list[Any]], Any]) -> Policy:
    """Numbers by ``pick`` (max or min); a stage's block kind is its first listed one."""
    return lambda name, choices: choices[0] if name.endswith(".block") else pick(choices)


def stage_kinds(cfg: SpaceConfig) -> list[tuple[str, ...]]:
    return [tuple(stage.block_types or cfg.block_types) for stage in cfg.stages]


def check_elastic(cfg: SpaceConfig) -> None:
    """Refuse, in one line, a space a supernet cannot cover, naming what and why."""
    check_space(cfg)
    for i, kinds in enumerate(stage_kinds(cfg)):
        bad = [k for k in kinds if block_kind(k).elastic_why]
        if bad:
            raise UserError(f"space.stages[{i}] offers block type {bad[0]} which a supernet cannot slice "
                            f"({block_kind(bad[0]).elastic_why}); allowed with a supernet: "
                            f"{', '.join(elastic_kinds())}")
    if True in cfg.se:
        raise UserError("space.se offers squeeze-and-excite, which this supernet does not slice; allowed with a "
                        "supernet: se: [false]")
    if len(set(cfg.hswish)) > 1:
        raise UserError(f"space.hswish {list(cfg.hswish)} not allowed with a supernet; allowed: one fixed choice, "
                        "[false] or [true]")


class SupernetSpace:
    """The architectures of ``cfg`` a supernet trains and serves, and their largest dimensions."""

    def __init__(self, cfg: SpaceConfig, *, in_chs: int, num_classes: int) -> None:
        check_elastic(cfg)
        self.cfg, self.in_chs, self.num_classes = cfg, in_chs, num_classes
        self.space = SearchSpace(cfg, in_chs=in_chs, num_classes=num_classes)
        width = max(cfg.widths)
        self.max_stem = make_divisible(cfg.stem_chs * width)
        self.max_out = [make_divisible(stage.chs * width) for stage in cfg.stages]
        self.max_head = make_divisible(cfg.head_chs * max(1.0, width))
        self.max_k, self.max_e = max(cfg.kernels), max(cfg.exp_ratios)
        self.hswish = cfg.hswish[0]

    def max_in(self, stage: int, index: int) -> int:
        """Largest input channels of block ``index`` of ``stage``."""
        if index > 0:
            return self.max_out[stage]
        return self.max_out[stage - 1] if stage > 0 else self.max_stem

    def sample(self, policy: Policy) -> tuple[ArchSpec, dict[str, Any]]:
        chooser = PolicyChooser(policy)
        return self.space.sample(chooser), chooser.params

    def largest(self) -> ArchSpec:
        return self.sample(_extreme(max))[0]

    def smallest(self) -> ArchSpec:
        return self.sample(_extreme(min))[0]

    def random(self, rng: np.random.Generator) -> ArchSpec:
        return self.sample(lambda _, choices: choices[int(rng.integers(len(choices)))])[0]

    def check_covers(self, spec: ArchSpec) -> None:
        """Raise a one-line UserError unless the supernet holds weights for every part of ``spec``."""
        cfg = self.cfg
        problems = []
        if spec.in_chs != self.in_chs or spec.num_classes != self.num_classes:
            problems.append(f"input {spec.in_chs} channels and {spec.num_classes} classes (supernet: "
                            f"{self.in_chs}, {self.num_classes})")
        if len(spec.stages) != len(cfg.stages):
            problems.append(f"{len(spec.stages)} stages (supernet: {len(cfg.stages)})")
        if spec.stem_chs > self.max_stem or spec.stem_stride != cfg.stem_stride or (spec.head_chs or 0) > self.max_head:
            problems.append("its stem or head")
        for i, (stage, kinds) in enumerate(zip(spec.stages, stage_kinds(cfg))):
            if (stage.kind not in kinds or stage.repeats > max(cfg.stages[i].depths) or stage.kernel > self.max_k
                    or stage.exp_ratio > self.max_e or stage.out_chs > self.max_out[i] or stage.se
                    or stage.hswish != self.hswish or stage.mid_chs or stage.stride != cfg.stages[i].stride):
                problems.append(f"stage {i} {stage.format()}")
        if problems:
            raise UserError(f"{spec.format()} is not a subnetwork of this supernet: {problems[0]}; allowed: "
                            "architectures of the supernet's space (hwnas supernet info)")
