from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from compress.recipe import parse_recipe
from nas.core.errors import UserError
from tests.conftest import tiny_config


@pytest.mark.slow
def test_every_recipe_step_runs_through_the_pipeline(tmp_path: Path, idx_dir: Path) -> None:
    import torch

    from compress.report import compress
    from nas.core.config import parse_search_config
    from nas.search.study import load_splits
    from nas.space.arch import parse
    from nas.space.builder import build

    cfg = parse_search_config(tiny_config(idx_dir))
    splits = load_splits(cfg, cache_dir=tmp_path)
    spec = parse("in_c1_r16-stem_k3_s2_c8-ir_r1_k3_s1_e4_c16-head_c32-fc_c10")
    model = build(spec).eval()
    recipe = parse_recipe({"sparsity": {"final": 0.5, "finetune_iters": 4, "mask_every": 1, "batch_size": 16},
                           "lowrank": {"rank_ratio": 0.5, "finetune_iters": 2, "batch_size": 16},
                           "share": {"bits": 4}})
    report = compress(model, spec, recipe, splits, repeats=5).report
    assert report["sparsity"]["sparsity"] > 0.3 and report["lowrank"]["factored_layers"]
    assert report["share"]["encoded_bytes"] < report["compressed"]["file_bytes"]
    assert report["compressed"]["gzip_bytes"] < report["compressed"]["file_bytes"]
    with pytest.raises(UserError, match="one of share"):
        parse_recipe({"share": {"bits": 4}, "quantize": {"mode": "static"}})
    # network slimming: the L1 penalty shrinks the BatchNorm scales that the bn criterion prunes by
    from compress.coupling import channel_groups
    from compress.distill import fine_tune
    from compress.importance import slimming_penalty

    def scales(m: torch.nn.Module) -> float:
        return float(sum(g.source[1].weight.detach().abs().sum() for g in channel_groups(m)[0]))

    slim, plain = build(spec), build(spec)
    plain.load_state_dict(slim.state_dict())
    for net, extra in ((slim, slimming_penalty(1.0)), (plain, None)):
        fine_tune(net, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=16, iterations=20,
                  batch_size=16, lr=1e-2, extra_loss=extra)
    assert scales(slim) < 0.9 * scales(plain)
    recipe = parse_recipe({"prune": {"criterion": "bn", "ratio": 0.5, "slimming": 1e-3, "slimming_iters": 2,
                                     "finetune_iters": 0, "batch_size": 16}})
    assert compress(model, spec, recipe, splits, repeats=5).report["compressed"]["macs"] < report["baseline"]["macs"]
    with pytest.raises(UserError, match="0 unless criterion is bn"):
        parse_recipe({"prune": {"criterion": "l1", "ratio": 0.5, "slimming": 1e-3, "slimming_iters": 2}})
    # a parameter budget, then the compact int8 format
    recipe = parse_recipe({"prune": {"criterion": "l1", "target_params": 0.5, "finetune_iters": 2, "batch_size": 16},
                           "quantize": {"mode": "static", "format": "qoperator", "per_channel": False,
                                        "calibration_images": 8}})
    result = compress(model, spec, recipe, splits, repeats=5)
    assert result.report["compressed"]["parameters"] <= 0.5 * result.report["baseline"]["parameters"]
    props = {p.key: p.value for p in onnx.load_from_string(result.onnx).metadata_props}
    assert "static int8, qoperator, per-tensor" in props["hwnas.quantization"]
