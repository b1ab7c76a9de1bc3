from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import yaml

from compress.recipe import load_recipe, parse_recipe
from nas.cli import main
from nas.errors import UserError
from nas.export import read_metadata
from nas.latency import session
from tests.conftest import tiny_config


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
        ("{prune: {criterion: l1}}", "exactly one of ratio or target_macs"),
        ("{prune: {criterion: l2, ratio: 0.5}}", "prune.criterion: 'l2' not allowed; allowed: l1, taylor, bn"),
        ("{quantize: {mode: int4}}", "quantize.mode: 'int4' not allowed; allowed: static, dynamic, fp16"),
        ("{quantise: {mode: static}}", "quantise"),
        ("[1, 2]", "expected a mapping"),
        ("missing.yaml", "recipe file missing.yaml not found"),
    ]:
        with pytest.raises(UserError, match=message):
            load_recipe(text)


@pytest.mark.slow
def test_compress_a_trained_trial_end_to_end(tmp_path: Path, idx_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(idx_dir, trials=1)))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    capsys.readouterr()
    recipe = ("{prune: {criterion: l1, ratio: 0.5, round_to: 2, finetune_iters: 3, batch_size: 16, "
              "distill: {temperature: 2, alpha: 0.5}}, quantize: {mode: static, calibration_images: 16}}")
    assert main(["compress", str(run / "trials" / "0000"), "--recipe", recipe, "--name", "r"]) == 0
    assert "x smaller" in capsys.readouterr().out
    out = run / "trials" / "0000" / "compressed" / "r"
    onnx.checker.check_model(onnx.load(str(out / "model.onnx")))
    report = json.loads((out / "report.json").read_text())
    assert {"baseline", "compressed", "size_ratio", "latency_ratio", "accuracy_drop_points"} <= set(report)
    assert report["compressed"]["macs"] <= report["baseline"]["macs"]
    # (at this toy size the QDQ scales and nodes outweigh the 4x smaller weights: no size assert here)
    weights = [t for t in onnx.load(str(out / "model.onnx")).graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    meta = read_metadata(out / "model.onnx")
    assert meta["hwnas.precision"] == "int8"
    assert parse_recipe(json.loads(meta["hwnas.recipe"])) == load_recipe(recipe)  # the recipe travels with the file
    x = __import__("numpy").zeros((1, 1, *json.loads(meta["hwnas.input_shape"])[2:]), dtype="float32")
    assert session(out / "model.onnx", threads=1).run(None, {"input": x})[0].shape == (1, 10)
    assert main(["compress", str(tmp_path), "--recipe", "{quantize: {mode: fp16}}"]) == 2
    assert "is not a model folder of a run" in capsys.readouterr().err


@pytest.mark.slow
def test_search_with_compression_knobs_reports_the_compressed_file(tmp_path: Path, idx_dir: Path) -> None:
    import optuna

    from compress.recipe import parse_recipe

    config = tiny_config(idx_dir, trials=3)
    config["compression"] = {"prune_criteria": ["l1"], "prune_ratios": [0.5], "finetune_iters": 2,
                             "quantize": ["static"], "calibration_images": 16}
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    for t in done:
        recipe = parse_recipe(json.loads(t.user_attrs["recipe"]))  # the recipe round-trips through trial attrs
        assert recipe.precision == "int8" and t.user_attrs["precision"] == "int8"
        assert "pruned_channels" in t.user_attrs
        model = run / t.user_attrs["onnx_path"]
        assert read_metadata(model)["hwnas.precision"] == "int8"
        assert t.user_attrs["file_bytes"] == model.stat().st_size
        # costs are the compressed network's: int8 weights are 1 byte per parameter
        assert t.user_attrs["weight_mb"] == pytest.approx(t.user_attrs["parameters"] / 1e6, rel=0.2)
