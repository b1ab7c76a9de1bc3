"""The inception and plain-conv kinds: branch widths add up, the module computes what GoogLeNet's
does, pruning narrows the reduce convs only, and a search space can offer both kinds."""
from __future__ import annotations

import optuna
import pytest
import torch

from compress.prune import prune
from nas.core.config import SpaceConfig, StageConfig
from nas.space.arch import ArchError, parse
from nas.space.builder import build
from nas.space.kinds.inception import Inception
from nas.space.sampler import SearchSpace

NET = "in_c3_r32-stem_k3_s1_c16-cv_r1_k1_s1_c32-inc_r2_k5_s2_c64_o16_tr24_t32_fr4_f8_pp8-fc_c10"


def test_branch_widths_must_add_up_to_the_channels() -> None:
    with pytest.raises(ArchError, match="c72 must be the concatenated branches o \\+ t \\+ f \\+ pp = 64"):
        parse(NET.replace("c64_o16", "c72_o16"))


def test_the_module_is_four_branches_concatenated() -> None:
    torch.manual_seed(0)
    block = Inception(8, one=4, three_reduce=6, three=8, five_reduce=2, five=3, pool_proj=5, k=5, pool=True).eval()
    x = torch.randn(2, 8, 10, 10)
    y = block(x)
    assert y.shape == (2, 4 + 8 + 3 + 5, 5, 5)  # ceil-mode 3x3/2 pool: 10 -> 5
    pooled = block.pool(x)
    assert torch.allclose(y[:, :4], block.b1(pooled)) and torch.allclose(y[:, 12:15], block.b5(pooled))
    assert block.b5[2].conv.kernel_size == (5, 5)


def test_pruning_narrows_the_reduce_convs_and_keeps_the_outputs() -> None:
    model = build(parse(NET)).eval()
    result = prune(model, ratio=0.5, round_to=1)
    assert result.kept == {"blocks.1.b3": (24, 12), "blocks.1.b5": (4, 2), "blocks.2.b3": (24, 12),
                           "blocks.2.b5": (4, 2)}
    assert result.dense == ["blocks.0: plain conv, its channels are the next block's input (between blocks)"]
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_a_space_offers_inception_and_conv_stages() -> None:
    cfg = SpaceConfig(stages=(StageConfig(chs=16), StageConfig(chs=32, stride=2)), block_types=("inc", "cv"))
    space = SearchSpace(cfg, in_chs=3, num_classes=10)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kinds = set()
    for _ in range(12):
        trial = study.ask()
        spec = space.sample(trial)
        kinds |= {s.kind for s in spec.stages}
        assert parse(spec.format()) == spec
        assert build(spec)(torch.zeros(1, 3, spec.resolution, spec.resolution)).shape == (1, 10)
        study.tell(trial, 0.0)
    assert kinds == {"inc", "cv"}
