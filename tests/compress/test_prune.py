from __future__ import annotations

import copy

import pytest
import torch

from compress.coupling import StreamGroup, channel_groups, kept_channels, slot_scores
from compress.importance import slimming_penalty
from compress.prune import parameter_count, prune, prune_to_budget, prune_to_macs
from compress.surgery import apply_keep
from nas.core.errors import UserError
from nas.cost.costs import count_macs
from nas.space.arch import parse
from nas.space.builder import build

# one network per block family: residual IR with SE, ShuffleNetV1 (grouped 1x1 + shuffle, add and
# concat shortcuts), ShuffleNetV2, FBNet grouped, and an expansion-1 IR / ds left dense
ARCHS = {
    "ir": "in_c3_r16-stem_k3_s1_c16-ir_r2_k3_s1_e4_c16_se1-ir_r1_k5_s2_e6_c24-head_c64-fc_c10",
    "sh": "in_c3_r16-stem_k3_s1_c32-sh_r2_s1_g2_c32-sh_r1_s2_g2_c64-fc_c10",
    "sh2": "in_c3_r16-stem_k3_s1_c16-sh2_r2_s1_c32-sh2_r1_s2_c64-fc_c10",
    "fb": "in_c3_r16-stem_k3_s1_c16-fb_r2_k3_s1_e4_g2_c16-fb_r1_k3_s2_e6_g2_c32-fc_c10",
    "dense": "in_c3_r16-stem_k3_s1_c16-ir_r1_k3_s1_e1_c16-ds_r1_k3_s2_c32-fc_c10",
    "rb": "in_c3_r16-stem_k3_s1_c16-rb_r2_s1_c16-rb_r1_s2_c32-fc_c10",
    "rbn": "in_c3_r16-stem_k3_s1_c16-rbn_r2_s1_c64-rbn_r1_s2_c128-fc_c10",
    "fir": "in_c3_r16-stem_k3_s1_c16-fir_r2_k3_s1_e4_c16-fir_r1_k3_s2_e4_c24_ps1-head_c64-fc_c10",
    "se2": "in_c3_r16-stem_k3_s1_c16-ir_r2_k3_s1_e4_c16_se2-ir_r1_k5_s2_e6_c24_se2-head_c64-fc_c10",
}


def _randomize_bn(model: torch.nn.Module) -> None:
    # untrained BN is the identity on scale; random statistics make channel removal visible
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.1
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5


@pytest.mark.parametrize("family", list(ARCHS))
@pytest.mark.parametrize("criterion", ["l1", "bn", "taylor"])
def test_pruned_models_run_keep_shapes_and_shrink(family: str, criterion: str) -> None:
    spec = parse(ARCHS[family])
    model = build(spec).eval()
    _randomize_bn(model)
    x = torch.randn(4, 3, 16, 16)
    batches = [(x, torch.tensor([0, 1, 2, 3]))]
    before = count_macs(model, x[:1])
    result = prune(model, ratio=0.5, criterion=criterion, taylor_batches=batches)
    model.eval()
    assert model(x).shape == (4, 10)
    if family == "dense":
        assert result.kept == {} and len(result.dense) == 1
        assert count_macs(model, x[:1]) == before
    else:
        assert result.kept and all(after < before_ for before_, after in result.kept.values())
        assert count_macs(model, x[:1]) < before
        # half of each group, rounded up to 8 channels (to groups^2 with a shuffle): what the model now has
        groups, _ = channel_groups(model)
        assert {g.name: g.channels for g in groups} == {name: after for name, (_, after) in result.kept.items()}
        for group in groups:
            before_ = result.kept[group.name][0]
            step = group.unit if group.unit > 1 else 8
            assert group.channels == min(before_, max(step, -(-before_ // 2 // step) * step))


@pytest.mark.parametrize("family", list(ARCHS))
def test_ratio_zero_and_keep_all_give_identical_outputs(family: str) -> None:
    model = build(parse(ARCHS[family])).eval()
    _randomize_bn(model)
    x = torch.randn(2, 3, 16, 16)
    reference = model(x)
    prune(model, ratio=0.0)
    assert torch.equal(model(x), reference)
    # keeping every channel through the surgery path (all slots) is exact too
    for group in channel_groups(model)[0]:
        apply_keep(group, torch.arange(group.channels))
    assert torch.allclose(model.eval()(x), reference, atol=1e-5)


def test_shuffle_pruning_is_exact_on_the_kept_channels() -> None:
    # Zero the channels that will be removed: the pruned network must compute the same function.
    model = build(parse(ARCHS["sh"])).eval()
    _randomize_bn(model)
    groups, _ = channel_groups(model)
    x = torch.randn(2, 3, 16, 16)
    keeps = []
    for g in groups:
        score = slot_scores(g, torch.rand(g.channels, generator=torch.Generator().manual_seed(1)))
        pre = kept_channels(g, score, g.channels // 2)
        dropped = torch.ones(g.channels, dtype=torch.bool)
        dropped[pre] = False
        bn = g.source[1]
        bn.weight.data[dropped] = 0.0  # producer output is ReLU6(BN(conv)) = ReLU6(bias) there
        bn.bias.data[dropped] = 0.0
        perm = g.owner[g.shuffle].perm  # post position i holds pre channel perm[i]
        dw_bn = g.owner[g.depthwise][1]
        dw_bn.weight.data[dropped[perm]] = 0.0  # and the depthwise BN's output there
        dw_bn.bias.data[dropped[perm]] = 0.0
        keeps.append(pre)
    reference = model(x)
    for g, pre in zip(groups, keeps):
        apply_keep(g, pre)
    assert torch.allclose(model.eval()(x), reference, atol=1e-5)


def test_prune_to_macs_and_global_scope() -> None:
    spec = parse("in_c3_r32-stem_k3_s2_c32-ir_r2_k3_s1_e6_c32-ir_r2_k3_s2_e6_c64-head_c128-fc_c10")
    model = build(spec).eval()
    x = torch.zeros(1, 3, 32, 32)
    before = count_macs(model, x)
    prune_to_macs(model, 0.5, (1, 3, 32, 32))
    assert 0.4 * before <= count_macs(model, x) <= 0.55 * before
    other = build(spec).eval()
    _randomize_bn(other)
    result = prune(other, ratio=0.5, criterion="bn", scope="global")
    assert all(after % 8 == 0 for _, after in result.kept.values())
    assert slimming_penalty(1e-4)(build(spec)).item() > 0
    third = build(spec).eval()
    params = parameter_count(third)
    prune_to_budget(third, 0.4, parameter_count)
    assert 0.3 * params <= parameter_count(third) <= 0.4 * params


def test_bad_pruning_options_are_named() -> None:
    model = build(parse(ARCHS["ir"]))
    with pytest.raises(UserError, match="pruning criterion 'random' is not supported; allowed: l1, taylor, bn"):
        prune(copy.deepcopy(model), ratio=0.5, criterion="random")
    with pytest.raises(UserError, match="pruning ratio 1.0 not allowed"):
        prune(model, ratio=1.0)
    with pytest.raises(UserError, match="needs training batches"):
        prune(model, ratio=0.5, criterion="taylor")


def test_head_channels_prune_exactly_into_the_classifier() -> None:
    model = build(parse(ARCHS["ir"])).eval()
    _randomize_bn(model)
    head = next(g for g in channel_groups(model)[0] if g.name == "head")
    keep = torch.arange(0, head.channels, 2)
    dropped = torch.ones(head.channels, dtype=torch.bool)
    dropped[keep] = False
    with torch.no_grad():
        model.classifier.weight[:, dropped] = 0  # the dropped channels no longer reach the logits
    x = torch.randn(2, 3, 16, 16)
    reference = model(x)
    apply_keep(head, keep)
    assert model.head[0].out_channels == model.classifier.in_features == len(keep) == 32
    assert torch.allclose(model.eval()(x), reference, atol=1e-5)


def test_residual_streams_prune_exactly_across_adds() -> None:
    spec = parse("in_c3_r16-stem_k3_s1_c16-ir_r3_k3_s1_e4_c32-ir_r2_k3_s2_e4_c48-ir_r1_k3_s1_e1_c64-head_c64-fc_c10")
    model = build(spec).eval()
    _randomize_bn(model)
    groups, dense = channel_groups(model, streams=True)
    streams = [g for g in groups if isinstance(g, StreamGroup)]
    # blocks 0-2 (32 channels, two residual adds) and 3-4 (48) are streams; the stream of block 5 feeds
    # the head, but blocks 3-4's stream feeds block 5's depthwise conv (expansion 1): left dense
    assert [(g.name, len(g.producers), len(g.consumers)) for g in streams] == [("blocks.0-2.out", 3, 3),
                                                                              ("blocks.5.out", 1, 1)]
    assert any(d.startswith("blocks.3-4.out") for d in dense)
    assert channel_groups(model)[0] == [g for g in groups if not isinstance(g, StreamGroup)]
    stream = streams[0]
    keep = torch.arange(0, 32, 2)
    with torch.no_grad():
        for producer in stream.producers:  # every projection writes zeros on the dropped channels
            bn = producer[1]
            dropped = torch.ones(32, dtype=torch.bool)
            dropped[keep] = False
            bn.weight[dropped] = 0
            bn.bias[dropped] = 0
            bn.running_mean[dropped] = 0
    x = torch.randn(2, 3, 16, 16)
    reference = model(x)
    apply_keep(stream, keep)
    assert torch.allclose(model.eval()(x), reference, atol=1e-5)
    assert model.blocks[1].body[0][0].in_channels == 16 and model.blocks[2].body[-1][0].out_channels == 16
    # pruned with the streams, the same ratio removes more
    a, b = build(spec).eval(), build(spec).eval()
    prune(a, ratio=0.5)
    prune(b, ratio=0.5, streams=True)
    x1 = torch.zeros(1, 3, 16, 16)
    assert count_macs(b, x1) < count_macs(a, x1) and b(x1).shape == (1, 10)


@pytest.mark.parametrize("family", list(ARCHS))
def test_stream_pruning_runs_on_every_family(family: str) -> None:
    model = build(parse(ARCHS[family])).eval()
    _randomize_bn(model)
    x = torch.randn(2, 3, 16, 16)
    batches = [(x, torch.tensor([0, 1]))]
    prune(model, ratio=0.5, criterion="taylor", streams=True, taylor_batches=batches)
    assert model.eval()(x).shape == (2, 10)
