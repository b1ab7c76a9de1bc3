"""The block-kind table: every entry describes itself completely (contract tests driven by the
table), consumers refuse by name what a kind does not offer, and moving the kinds into the table
left the search space sampling exactly what it sampled before."""
from __future__ import annotations

import optuna
import pytest
import torch
from torch import nn

from compress.coupling import channel_groups
from nas.core.config import load_search_config
from nas.search.study import make_sampler
from nas.space.arch import parse
from nas.space.builder import block_kinds, build
from nas.space.kinds import BlockKind, block_kind, block_types, elastic_kinds, stage_kinds, table
from nas.space.kinds.base import ChannelGroup
from nas.space.sampler import SearchSpace
from nas.space.spec import ArchError

KINDS = sorted(table())


def _net(stage: str, in_chs: int = 16) -> str:
    return f"in_c3_r32-stem_k3_s1_c{in_chs}-{stage}-head_c64-fc_c10"


def _overrides(entry: BlockKind, method: str) -> bool:
    return getattr(type(entry), method) is not getattr(BlockKind, method)


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_parses_builds_runs_and_says_how_it_prunes(name: str) -> None:
    entry = block_kind(name)
    assert entry.name == name and entry.summary and entry.example.startswith(name + "_")
    text = _net(entry.example)
    spec = parse(text)
    assert spec.format() == text
    model = build(spec).eval()
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert [k.name for k in block_kinds(spec)] == [name] * spec.stages[0].repeats
    # a pruning rule or the reason there is none, and never both
    assert _overrides(entry, "coupling") != bool(entry.pruning_why)
    groups, dense = channel_groups(model)
    assert all(isinstance(g, ChannelGroup) for g in groups)
    if entry.pruning_why:
        assert [d for d in dense if entry.pruning_why in d] and all(g.name == "head" for g in groups)


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_is_elastic_or_says_why_not(name: str) -> None:
    entry = block_kind(name)
    methods = ("elastic_layers", "elastic_forward", "elastic_export")
    if entry.elastic_why:
        assert not any(_overrides(entry, m) for m in methods) and name not in elastic_kinds()
        with pytest.raises(ArchError, match=f"{name!r} is not elastic"):
            entry.elastic_layers(16, 16, max_k=3, max_e=1, stride=1, hswish=False)
    else:
        assert all(_overrides(entry, m) for m in methods) and name in elastic_kinds()


def test_the_table_lists_kinds_in_a_stable_order() -> None:
    assert block_types()[:10] == ("ir", "fir", "ds", "sh", "sh2", "fb", "rb", "rbn", "vgg", "fire")
    assert set(stage_kinds()) == set(block_types()) | {"skip", "mx"}  # mx: zoo only (MixNet)


def test_a_kind_with_neither_a_rule_nor_a_reason_is_refused_by_name() -> None:
    class Nameless(BlockKind):
        name, summary, example, required = "zz", "test kind", "zz_s1_c8", ("s", "c")

    with pytest.raises(AssertionError, match="'zz' gives neither a pruning rule nor why"):
        Nameless().coupling(nn.Identity(), "blocks.0")


def test_unknown_kinds_are_named_with_the_allowed_ones() -> None:
    with pytest.raises(ArchError, match="unknown block kind 'zz' in 'zz_r1_s1_c16'; allowed: in, stem, head, fc, ir, fir"):
        parse(_net("zz_r1_s1_c16"))
    with pytest.raises(ArchError, match="unknown block kind 'zz'; allowed: ir, fir"):
        block_kind("zz")


# The first generation of the bundled searches, sampled before the kinds moved into the table
# (commit 7610757): the same seed must keep giving the same candidates.
QUICKSTART_FIRST = [
    "in_c1_r20-stem_k3_s2_c24-sh_r1_s1_g4_c32-ir_r1_k5_s2_e3_c40-sh_r1_s2_g1_c80-ir_r2_k3_s1_e1_c120-head_c320-fc_c10",
    "in_c1_r28-stem_k3_s2_c16-sh_r1_s1_g2_c16-sh_r2_s2_g8_c32-sh_r2_s2_g1_c48-ir_r2_k5_s1_e6_c72-head_c256-fc_c10",
    "in_c1_r16-stem_k3_s2_c8-ir_r1_k7_s1_e1_c8-ir_r1_k3_s2_e4_c8-ir_r3_k3_s2_e4_c16-ir_r2_k5_s1_e6_c24-head_c256-fc_c10",
    "in_c1_r24-stem_k3_s2_c24-sh_r1_s1_g8_c32-ir_r1_k7_s2_e3_c40-sh_r2_s2_g4_c80-sh_r1_s1_g2_c120-head_c320-fc_c10",
    "in_c1_r16-stem_k3_s2_c8-ir_r1_k3_s1_e6_c8-ir_r2_k3_s2_e3_c8-ir_r1_k5_s2_e1_c16-ir_r2_k3_s1_e1_c24-head_c256-fc_c10",
    "in_c1_r28-stem_k3_s2_c8-sh_r1_s1_g4_c16-ir_r2_k7_s2_e1_c8-sh_r2_s2_g8_c32-ir_r1_k3_s1_e3_c24-head_c256-fc_c10",
    "in_c1_r16-stem_k3_s2_c8-sh_r1_s1_g2_c8-sh_r1_s2_g1_c8-ir_r2_k3_s2_e3_c16-sh_r1_s1_g4_c32-head_c256-fc_c10",
    "in_c1_r24-stem_k3_s2_c16-ir_r1_k7_s1_e6_c16-sh_r2_s2_g4_c32-sh_r3_s2_g8_c64-sh_r1_s1_g1_c72-head_c256-fc_c10",
]


def test_quickstart_samples_the_same_first_generation_as_before() -> None:
    cfg = load_search_config("quickstart")
    space = SearchSpace(cfg.space, in_chs=1, num_classes=10)
    study = optuna.create_study(sampler=make_sampler(cfg, worker=0), directions=["maximize", "minimize"])
    archs = []
    for i in range(cfg.search.population):
        trial = study.ask()
        archs.append(space.sample(trial).format())
        study.tell(trial, [0.5 + i * 0.01, float(i)])
    assert archs == QUICKSTART_FIRST
