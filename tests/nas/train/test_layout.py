"""Moving a network to channels_last and back keeps its weights and outputs."""
from __future__ import annotations

import torch
from torch import nn

from nas.train.layout import to_channels_last, to_contiguous


def test_round_trip_keeps_outputs() -> None:
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 3)).eval()
    x = torch.randn(2, 8, 8, 8)
    reference = model(x)
    conv = model[0]
    assert to_channels_last(model) is model
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert torch.allclose(model(x.to(memory_format=torch.channels_last)), reference, atol=1e-5)
    to_contiguous(model, "cpu")
    assert conv.weight.is_contiguous() and torch.allclose(model(x), reference, atol=1e-5)
