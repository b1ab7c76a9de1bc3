"""Quantization-aware training: fake-quantized wrappers that train and strip back to plain layers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.qat import prepare, strip
from compress.recipe import parse_recipe
from nas.core.errors import UserError
from nas.space.arch import parse
from nas.space.builder import build


def test_qat_wrappers_train_and_strip_back_to_plain_layers() -> None:
    model = build(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e4_c16-head_c32-fc_c10")).train()
    prepare(model)
    x = torch.randn(4, 1, 8, 8)
    loss = model(x).sum()
    loss.backward()  # straight-through gradients reach the weights
    grads = [m.layer.weight.grad for m in model.modules() if type(m).__name__ == "_FakeQuant"]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    fake = model.eval()(x)
    strip(model)
    assert not any(type(m).__name__ == "_FakeQuant" for m in model.modules())
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == len(grads)
    plain = model(x)
    assert fake.shape == plain.shape and not torch.equal(fake, plain)  # rounding was simulated
    with pytest.raises(UserError, match="0 unless mode is static"):
        parse_recipe({"quantize": {"mode": "fp16", "qat_iters": 10}})
