"""Unstructured magnitude pruning: the polynomial schedule, masks per layer or global, sparsity."""
from __future__ import annotations

import pytest
import torch

from compress.sparsity import apply_masks, magnitude_masks, polynomial_sparsity, sparsity_of
from nas.core.errors import UserError
from nas.space.arch import parse
from nas.space.builder import build


def test_unstructured_schedule_masks_and_sparsity() -> None:
    assert polynomial_sparsity(0, 100, initial=0.0, final=0.8) == 0.0
    assert polynomial_sparsity(100, 100, initial=0.0, final=0.8) == pytest.approx(0.8)
    assert 0 < polynomial_sparsity(50, 100, initial=0.0, final=0.8) < 0.8
    for scope in ("global", "per-layer"):
        model = build(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e4_c16-head_c32-fc_c10"))
        apply_masks(model, magnitude_masks(model, 0.8, scope=scope))
        assert sparsity_of(model) == pytest.approx(0.8, abs=0.02)
    x = torch.randn(1, 1, 8, 8)
    assert model.eval()(x).shape == (1, 10)
    with pytest.raises(UserError, match="sparsity 1.0 not allowed"):
        magnitude_masks(model, 1.0)
