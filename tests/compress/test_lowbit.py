"""4-bit weight groups: 15 levels per output channel, counted at half a byte per weight."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import optuna
import pytest
import torch

from compress.lowbit import apply_weight_bits, group_names, weight_layers
from compress.recipe import parse_recipe, sample_recipe
from compress.report import compress
from nas.core.config import CompressionSpace, parse_search_config
from nas.core.errors import UserError
from nas.search.study import load_splits
from nas.space.arch import parse
from nas.space.builder import build
from tests.conftest import tiny_config


def test_four_bit_groups_hold_15_levels_and_count_half_a_byte(tmp_path: Path, idx_dir: Path) -> None:
    spec = parse("in_c1_r16-stem_k3_s2_c8-ir_r1_k3_s1_e4_c16-ir_r2_k3_s2_e4_c24-head_c32-fc_c10")
    assert group_names(spec) == ["stem", "stage0", "stage1", "head"]
    model = build(spec).eval()
    before = {n: [l.weight.detach().clone() for l in ls] for n, ls in weight_layers(model, spec).items()}
    low = apply_weight_bits(model, spec, {"stage1": 4, "head": 4, "stem": 8})
    assert set(low) == {"stage1", "head"} and all(v > 0 for v in low.values())
    for name, layers in weight_layers(model, spec).items():
        for layer, old in zip(layers, before[name]):
            levels = max(len(torch.unique(row)) for row in layer.weight.detach().flatten(1))
            assert levels <= 15 if name in low else levels > 15 or layer.weight.shape[1:].numel() <= 15
    with pytest.raises(UserError, match="unknown group 'stage7'; allowed: stem, stage0, stage1, head"):
        apply_weight_bits(build(spec), spec, {"stage7": 4})
    with pytest.raises(UserError, match="empty unless mode is static"):
        parse_recipe({"quantize": {"mode": "fp16", "weight_bits": {"head": 4}}})

    cfg = parse_search_config(tiny_config(idx_dir))
    splits = load_splits(cfg, cache_dir=tmp_path)
    trained = build(spec).eval()
    eight = compress(trained, spec, parse_recipe({"quantize": {"mode": "static", "calibration_images": 8}}), splits,
                     repeats=3)
    four = compress(trained, spec, parse_recipe({"quantize": {"mode": "static", "calibration_images": 8,
                                                              "weight_bits": {"stage1": 4, "head": 4}}}), splits,
                    repeats=3)
    saved = 0.5 * sum(four.report["lowbit"]["elements_at_4_bits"].values()) / 1e6
    assert four.report["compressed"]["weight_mb"] == pytest.approx(eight.report["compressed"]["weight_mb"] - saved)
    assert "runs them as int8" in four.report["lowbit"]["note"]
    proto = onnx.load_from_string(four.onnx)
    head_weight = next(t for t in proto.graph.initializer if t.name.startswith("head") and "weight" in t.name
                       and onnx.numpy_helper.to_array(t).dtype == np.int8)
    stored = onnx.numpy_helper.to_array(head_weight).reshape(32, -1)
    assert max(len(np.unique(row)) for row in stored) <= 15  # the int8 file keeps the 4-bit levels

    space = CompressionSpace(quantize=("static",), weight_bits=(8, 4))
    recipe = sample_recipe(optuna.trial.FixedTrial({"c.bits.stem": 8, "c.bits.stage0": 4, "c.bits.stage1": 8,
                                                    "c.bits.head": 4}), space, group_names(spec))
    assert recipe is not None and recipe.quantize is not None and recipe.quantize.weight_bits == {"stage0": 4,
                                                                                                   "head": 4}
