"""Low-rank factorization of 1x1 convs and linear layers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.lowrank import factorize
from nas.core.errors import UserError


def test_low_rank_is_exact_at_full_rank_of_a_low_rank_weight() -> None:
    layer = nn.Sequential(nn.Linear(64, 64))
    layer[0].weight.data = torch.randn(64, 4) @ torch.randn(4, 64)  # rank 4
    x = torch.randn(3, 64)
    reference = layer(x)
    done = factorize(layer, 4 / 64)
    assert done == {"0": (64, 64, 4)} and isinstance(layer[0], nn.Sequential)
    assert torch.allclose(layer(x), reference, atol=1e-4)
    with pytest.raises(UserError, match="rank_ratio 0 not allowed"):
        factorize(layer, 0)
