from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas.core.config import parse_search_config
from nas.space.arch import parse
from nas.space.blocks import make_divisible
from nas.space.kinds import block_types, check_space
from nas.space.sampler import SearchSpace
from tests.conftest import tiny_config


@pytest.mark.parametrize("value, expected", [(4, 8), (12, 16), (20, 24), (16 * 0.75, 16), (96 * 1.25, 120),
                                             (33, 32)])
def test_make_divisible(value: float, expected: int) -> None:
    assert make_divisible(value) == expected


def test_fixed_trial_replays_an_architecture(tmp_path: Path) -> None:
    cfg = parse_search_config(tiny_config(tmp_path))
    space = SearchSpace(cfg.space, in_chs=1, num_classes=10)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(10):
        trial = study.ask()
        spec = space.sample(trial)
        assert space.sample(optuna.trial.FixedTrial(trial.params)) == spec
        assert parse(spec.format()) == spec
        study.tell(trial, 0.0)


def test_shuffle_channels_divide_by_groups(tmp_path: Path) -> None:
    data = tiny_config(tmp_path)
    data["space"].update(block_types=["sh"], groups=[3, 8], widths=[0.5, 0.75, 1.0, 1.4])
    space = SearchSpace(parse_search_config(data).space, in_chs=3, num_classes=10)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        spec = space.sample(study.ask())
        for stage in spec.stages:
            assert stage.out_chs % 8 == 0 and (stage.out_chs // 4) % stage.groups == 0


def test_width_scales_channels_but_not_head_below_one(tmp_path: Path) -> None:
    space = SearchSpace(parse_search_config(tiny_config(tmp_path)).space, in_chs=1, num_classes=10)
    base = {"resolution": 16, "s0.block": "ir", "s0.depth": 1, "s0.kernel": 3, "s0.expansion": 1,
            "s1.block": "ir", "s1.depth": 1, "s1.kernel": 3, "s1.expansion": 1}
    half = space.sample(optuna.trial.FixedTrial({**base, "width": 0.5}))
    full = space.sample(optuna.trial.FixedTrial({**base, "width": 1.0}))
    assert (half.stem_chs, half.stages[1].out_chs, half.head_chs) == (8, 8, 32)
    assert (full.stem_chs, full.stages[1].out_chs, full.head_chs) == (8, 16, 32)


def test_every_block_kind_samples_builds_and_replays(tmp_path: Path) -> None:
    import torch

    from nas.space.builder import build

    data = tiny_config(tmp_path)
    data["space"].update(block_types=list(block_types()), se=[False, True], hswish=[False, True], groups=[1, 2, 4])
    data["space"]["stages"].append({"chs": 24, "stride": 1, "depths": [1, 2], "block_types": ["sh2", "fb"]})
    space = SearchSpace(parse_search_config(data).space, in_chs=3, num_classes=4)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    kinds = set()
    for _ in range(60):
        trial = study.ask()
        spec = space.sample(trial)
        kinds |= {s.kind for s in spec.stages}
        assert space.sample(optuna.trial.FixedTrial(trial.params)) == spec
        assert build(spec)(torch.zeros(1, 3, spec.resolution, spec.resolution)).shape == (1, 4)
        study.tell(trial, 0.0)
    assert kinds == set(block_types())


def test_fb_needs_a_group_that_divides_channels(tmp_path: Path) -> None:
    from nas.core.errors import UserError

    data = tiny_config(tmp_path)
    data["space"].update(block_types=["fb"], groups=[3])
    with pytest.raises(UserError, match="space.groups: .*divisor of 8"):
        check_space(parse_search_config(data).space)
