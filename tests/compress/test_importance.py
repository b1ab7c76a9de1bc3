"""Channel importance by each criterion, checked by hand, and the slimming penalty."""
from __future__ import annotations

import pytest
import torch

from compress.coupling import channel_groups
from compress.importance import channel_importance, slimming_penalty
from nas.core.errors import UserError
from nas.space.arch import parse
from nas.space.builder import build

ARCH = "in_c3_r16-stem_k3_s1_c16-ir_r1_k3_s2_e4_c24-head_c32-fc_c10"


def test_l1_and_bn_scores_are_the_producer_weights() -> None:
    model = build(parse(ARCH))
    groups, _ = channel_groups(model)
    for group, scores in zip(groups, channel_importance(groups, "l1")):
        assert torch.equal(scores, group.source.conv.weight.detach().abs().flatten(1).sum(1))
    for group in groups:
        group.source.bn.weight.data = torch.arange(group.channels, dtype=torch.float32) - 3
    for group, scores in zip(groups, channel_importance(groups, "bn")):
        assert scores.tolist() == [abs(i - 3.0) for i in range(group.channels)]
    assert float(slimming_penalty(2.0)(model).detach()) == pytest.approx(2 * sum(float(s.sum()) for s in
                                                                        channel_importance(groups, "bn")))


def test_taylor_scores_are_normalised_per_group_and_need_batches() -> None:
    model = build(parse(ARCH))
    groups, _ = channel_groups(model)
    batch = (torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]))
    for scores in channel_importance(groups, "taylor", [batch], model):
        assert float(scores.norm()) == pytest.approx(1.0, rel=1e-5) and bool((scores >= 0).all())
    assert all(p.grad is None for p in model.parameters())  # gradients are cleared after scoring
    with pytest.raises(UserError, match="taylor criterion needs training batches"):
        channel_importance(groups, "taylor")
    with pytest.raises(UserError, match="taylor criterion got no batches"):
        channel_importance(groups, "taylor", [], model)
    with pytest.raises(UserError, match="pruning criterion 'l2' is not supported; allowed: l1, taylor, bn"):
        channel_importance(groups, "l2")
