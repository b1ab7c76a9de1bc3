from __future__ import annotations

import pytest

from nas.cost.costs import count_costs
from nas.cost.layers import layer_table
from nas.space.arch import parse
from nas.space.zoo import zoo_entries


def test_small_network_layer_by_layer() -> None:
    spec = parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2")
    table = layer_table(spec)
    assert [l.kind for l in table] == ["conv", "act", "dwconv", "act", "pwconv", "add", "pwconv", "act", "gap",
                                       "flatten", "linear"]
    stem, _, dw, _, project, add, head = table[:7]
    assert (stem.in_shape, stem.out_shape, stem.macs, stem.weight_elems) == ((1, 1, 8, 8), (1, 8, 8, 8), 8 * 64 * 9,
                                                                             8 * 9 + 8)
    assert (dw.groups, dw.kernel, dw.macs, dw.weight_elems) == (8, 3, 8 * 64 * 9, 8 * 9 + 8)
    assert project.macs == 64 * 8 * 8 and add.in_elems == 2 * 512 and add.out_elems == 512
    assert head.out_shape == (1, 16, 8, 8) and table[-1].macs == 16 * 2


def test_grouped_strided_and_shuffle_layers() -> None:
    spec = parse("in_c3_r16-stem_k3_s2_c24_mp1-sh_r1_s2_g3_c48-fc_c10")
    table = layer_table(spec)
    kinds = [l.kind for l in table]
    assert kinds[:3] == ["conv", "act", "maxpool"] and "shuffle" in kinds and "concat" in kinds
    gconvs = [l for l in table if l.kind == "gconv"]
    assert [g.groups for g in gconvs] == [3, 3]
    dw = next(l for l in table if l.kind == "dwconv")
    assert dw.stride == 2 and dw.out_shape == (1, 12, 2, 2)


@pytest.mark.parametrize("entry", zoo_entries(), ids=lambda e: e.name)
def test_layer_macs_agree_with_fvcore(entry) -> None:
    assert sum(l.macs for l in layer_table(entry.spec)) == count_costs(entry.spec).macs
