"""Structured pruning of models from outside the grammar through Torch-Pruning's dependency graph."""
from __future__ import annotations

import pytest
import torch

from compress.coupling import channel_groups
from compress.graph_prune import prune_any, stages
from nas.cost.costs import count_macs
from nas.space.builder import build
from nas.space.zoo import mobilenet_v2, shufflenet_v2
from tests import own_models

X = torch.zeros(1, 3, 32, 32)


def _macs(m: torch.nn.Module) -> float:
    return float(count_macs(m, X))


@pytest.mark.parametrize("name", sorted(set(own_models.ALL) - {"mha"}))
def test_every_plain_model_prunes_to_half_its_macs_and_still_runs(name: str) -> None:
    net = own_models.ALL[name]().eval()
    before = [p.clone() for p in net.parameters()]
    pruned, outcome = prune_any(net, X, keep=0.5, cost=_macs, cost_name="macs")
    assert outcome.met and outcome.after == _macs(pruned) <= 0.5 * _macs(net)
    assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))  # the original untouched
    classifier = next(n for n, why in outcome.left_dense.items() if why == "the classifier's outputs")
    assert classifier not in outcome.channels


def test_attention_heads_are_left_dense_with_the_reason() -> None:
    pruned, outcome = prune_any(own_models.vit(), X, keep=0.5, cost=_macs)
    assert "attn.qkv" in outcome.left_dense and "breaks the forward pass" in outcome.left_dense["attn.qkv"]
    assert pruned.attn.qkv.out_features == 96 and outcome.met  # type: ignore[union-attr]


def test_a_model_that_cannot_reach_the_budget_says_why() -> None:
    # nn.MultiheadAttention's embedding must stay divisible by its 4 heads: the one prunable
    # group is left dense, so the budget is not met, and the outcome says so
    pruned, outcome = prune_any(own_models.mha(), X, keep=0.5, cost=_macs)
    assert not outcome.met and outcome.after == outcome.before
    assert "num_heads" in outcome.left_dense["patch"]
    assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("criterion", ["taylor", "bn"])
def test_criteria_that_need_gradients_or_batchnorm(criterion: str) -> None:
    net = own_models.resnet()
    calls = []

    def gradients(m: torch.nn.Module) -> None:
        calls.append(1)
        m.zero_grad()
        m(torch.randn(4, 3, 32, 32)).logsumexp(1).sum().backward()

    pruned, outcome = prune_any(net, X, criterion=criterion, ratio=0.5, cost=_macs,
                                gradients=gradients if criterion == "taylor" else None)
    assert outcome.channels["stem.0"] == [16, 8] and (calls if criterion == "taylor" else [1])
    assert _macs(pruned) < 0.5 * _macs(net)


def test_grammar_networks_why_the_hand_written_coupling_stays() -> None:
    # Torch-Pruning prunes an inverted-residual network of the grammar fully ...
    mbv2 = build(mobilenet_v2(width=0.5, resolution=32, classes=10)).eval()
    _, outcome = prune_any(mbv2, X, ratio=0.5, cost=_macs)
    assert list(outcome.left_dense) == ["classifier"]
    # ... but leaves ShuffleNetV2's branch convs dense (channel split + shuffle), which the block
    # table's coupling prunes exactly
    sh = build(shufflenet_v2(width=0.5, resolution=32, classes=10)).eval()
    _, outcome = prune_any(sh, X, ratio=0.5, cost=_macs)
    dense_blocks = {n.split(".right.")[0] for n in outcome.left_dense if ".right." in n}
    assert dense_blocks
    groups, dense = channel_groups(sh)
    assert not dense and dense_blocks <= {g.name.removesuffix(".right") for g in groups}


def test_stages_and_a_ratio_per_stage() -> None:
    net = own_models.resnet().eval()
    assert stages(net, X) == ["stem", "layer1", "layer2", "layer3"]
    single = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                 torch.nn.Linear(8, 10))
    assert stages(single, X) == []  # one conv and the classifier: no stages to set apart
    _, outcome = prune_any(net, X, ratio=0.0, stage_ratios={"layer3": 0.5}, cost=_macs)
    assert outcome.channels and all(name.startswith("layer3.") for name in outcome.channels)
    assert outcome.channels["layer3.0.conv1.0"] == [64, 32]


def test_global_scope_ranks_channels_across_layers() -> None:
    net = own_models.resnet().eval()
    _, local = prune_any(net, X, keep=0.5, cost=_macs, round_to=4)
    _, ranked = prune_any(net, X, keep=0.5, cost=_macs, round_to=4, global_scope=True)
    assert local.met and ranked.met
    def spread(channels: dict[str, list[int]]) -> float:
        shares = [after / before for before, after in channels.values()]
        return max(shares) - min(shares)

    # per layer: about the same share everywhere (rounding aside); global: where channels matter least
    assert spread(ranked.channels) > spread(local.channels) + 0.2
