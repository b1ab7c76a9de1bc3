"""Recipes: validated like configs, round-trip through JSON, and sampled knob by knob from a trial."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from compress.recipe import load_recipe, parse_recipe, sample_recipe, tflite_int8_options
from nas.deploy.tflite_int8 import Int8Options
from nas.core.config import CompressionSpace
from nas.core.errors import UserError


def test_recipe_round_trips_and_rejects_bad_input(tmp_path: Path) -> None:
    recipe = load_recipe("{prune: {criterion: taylor, target_macs: 0.5, distill: {temperature: 3}}, "
                         "quantize: {mode: static, calibration_method: entropy}}")
    assert recipe.prune is not None and recipe.prune.distill is not None and recipe.prune.distill.temperature == 3
    assert recipe.precision == "int8"
    assert parse_recipe(json.loads(recipe.to_json())) == recipe
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"quantize": {"mode": "fp16"}}))
    assert load_recipe(str(path)).precision == "fp16"
    for text, message in [
        ("{prune: {criterion: l1}}", "exactly one of ratio, target_macs, target_params or target_latency_ms"),
        ("{prune: {criterion: l2, ratio: 0.5}}", "prune.criterion: 'l2' not allowed; allowed: l1, taylor, bn"),
        ("{quantize: {mode: int4}}", "quantize.mode: 'int4' not allowed; allowed: static, dynamic, fp16"),
        ("{quantise: {mode: static}}", "quantise"),
        ("[1, 2]", "expected a mapping"),
        ("missing.yaml", "recipe file missing.yaml not found"),
    ]:
        with pytest.raises(UserError, match=message):
            load_recipe(text)


def test_sample_recipe_covers_every_knob() -> None:
    space = CompressionSpace(prune_criteria=("none", "taylor"), prune_ratios=(0.25, 0.5), distill=(False, True),
                             quantize=("none", "static"), rank_ratios=(1.0, 0.5), share_bits=(0, 4))
    params = {"c.prune": "taylor", "c.prune_ratio": 0.5, "c.distill": True, "c.rank_ratio": 0.5, "c.share_bits": 4}
    recipe = sample_recipe(optuna.trial.FixedTrial(params), space)
    assert recipe is not None and recipe.prune is not None and recipe.prune.criterion == "taylor"
    assert recipe.prune.distill is not None and recipe.lowrank is not None and recipe.lowrank.rank_ratio == 0.5
    assert recipe.share is not None and recipe.share.bits == 4 and recipe.quantize is None
    nothing = {"c.prune": "none", "c.rank_ratio": 1.0, "c.share_bits": 0, "c.quantize": "none"}
    assert sample_recipe(optuna.trial.FixedTrial(nothing), space) is None
    assert parse_recipe(json.loads(recipe.to_json())) == recipe


def test_a_recipes_static_int8_choices_reach_the_tflite_file() -> None:
    recipe = parse_recipe({"quantize": {"mode": "static", "calibration_images": 64, "per_channel": False,
                                        "calibration_method": "entropy", "qat_iters": 10}})
    options = tflite_int8_options(recipe)
    assert (options.calibration_images, options.per_channel, options.calibration_method, options.qat) == \
        (64, False, "entropy", True)
    notes = options.unexpressed()
    assert len(notes) == 2 and notes[0].startswith("calibration entropy") and notes[1].startswith("QAT")
    assert "per tensor" in options.describe() and "64 training images" in options.describe()
    # what the TFLite file cannot take from other recipes, it takes from the defaults
    assert tflite_int8_options(parse_recipe({"quantize": {"mode": "dynamic"}})) == Int8Options()
    assert tflite_int8_options(None) == Int8Options() and Int8Options().unexpressed() == []
    with pytest.raises(UserError, match="int8 TFLite route 'tf' not allowed; allowed: aiq, pt2e"):
        Int8Options(routes=("tf",))
