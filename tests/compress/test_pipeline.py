from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import yaml

from compress.recipe import load_recipe, parse_recipe
from nas.cli import main
from nas.core.errors import UserError
from nas.deploy.export import read_metadata
from nas.deploy.host_latency import session
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
        ("{prune: {criterion: l1}}", "exactly one of ratio, target_macs or target_params"),
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
                             "quantize": ["static"], "calibration_images": 16, "weight_bits": [8, 4]}
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
        # costs are the compressed network's: int8 weights are 1 byte per parameter, 4-bit ones half
        four = [g for g, b in recipe.quantize.weight_bits.items() if b == 4]  # type: ignore[union-attr]
        assert set(four) == {k[len("c.bits."):] for k, v in t.params.items() if k.startswith("c.bits.") and v == 4}
        if four:
            assert "runs them as int8" in t.user_attrs["weight_bits_note"]
            assert t.user_attrs["weight_mb"] < t.user_attrs["parameters"] / 1e6
        else:
            assert t.user_attrs["weight_mb"] == pytest.approx(t.user_attrs["parameters"] / 1e6, rel=0.2)
    assert any(recipe_bits for recipe_bits in (json.loads(t.user_attrs["recipe"])["quantize"]["weight_bits"]
                                               for t in done))  # 3 trials x 4 groups: some 4-bit group


def test_unstructured_schedule_masks_and_sparsity() -> None:
    import torch

    from compress.sparsity import (
        apply_masks,
        magnitude_masks,
        polynomial_sparsity,
        sparsity_of,
    )
    from nas.space.arch import parse
    from nas.space.builder import build

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


def test_weight_sharing_codes_round_trip_exactly() -> None:
    import numpy as np
    import torch

    from compress.sharing import decode, encode, huffman_lengths, share_weights
    from nas.space.arch import parse
    from nas.space.builder import build, fuse_bn

    assert list(huffman_lengths(np.array([5, 0, 1, 1]))) == [1, 0, 2, 2]
    model = fuse_bn(build(parse("in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e4_c16-head_c32-fc_c10")).eval())
    x = torch.randn(2, 1, 8, 8)
    layers = share_weights(model, bits=3, layer_bits={"classifier": 2})
    assert all(len(np.unique(l.symbols)) <= 2 ** 3 + 1 for l in layers)
    assert len(np.unique(model.classifier.weight.detach().numpy())) <= 4
    blob = encode(model, layers)
    tensors = decode(blob)
    for name, tensor in model.state_dict().items():
        if tensor.dtype.is_floating_point:
            assert np.array_equal(tensors[name], tensor.numpy()), name
    dense_bytes = sum(t.numel() * 4 for t in model.state_dict().values() if t.dtype.is_floating_point)
    assert len(blob) < dense_bytes
    assert model(x).shape == (2, 10)


def test_low_rank_is_exact_at_full_rank_of_a_low_rank_weight() -> None:
    import torch
    from torch import nn

    from compress.lowrank import factorize

    layer = nn.Sequential(nn.Linear(64, 64))
    layer[0].weight.data = torch.randn(64, 4) @ torch.randn(4, 64)  # rank 4
    x = torch.randn(3, 64)
    reference = layer(x)
    done = factorize(layer, 4 / 64)
    assert done == {"0": (64, 64, 4)} and isinstance(layer[0], nn.Sequential)
    assert torch.allclose(layer(x), reference, atol=1e-4)
    with pytest.raises(UserError, match="rank_ratio 0 not allowed"):
        factorize(layer, 0)


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


def test_sample_recipe_covers_every_knob() -> None:
    import optuna

    from compress.recipe import sample_recipe
    from nas.core.config import CompressionSpace

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


def test_qat_wrappers_train_and_strip_back_to_plain_layers() -> None:
    import torch
    from torch import nn

    from compress.qat import prepare, strip
    from nas.space.arch import parse
    from nas.space.builder import build

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


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_static_int8_runs_fully_in_integer_kernels(fmt: str, tmp_path: Path) -> None:
    """Residual adds and convs sharing an input must not stay in float between Q/DQ pairs: that
    made int8 slower than fp32 on the host (int8 activations, shared DQ nodes)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from compress.quantize import quantize_int8_static
    from nas.data.splits import Preprocess
    from nas.deploy.export import DeployInfo, to_onnx
    from nas.space.arch import parse
    from nas.space.builder import build

    spec = parse("in_c3_r16-stem_k3_s2_c16-ir_r2_k3_s1_e4_c16-ir_r2_k3_s2_e4_c24-head_c64-fc_c10")
    torch.manual_seed(0)
    model = build(spec).eval()
    pre = Preprocess(source_size=16, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, channel_order="RGB")
    fp32 = to_onnx(model, DeployInfo.for_arch(spec, pre, tuple("abcdefghij")))
    x = np.random.default_rng(0).standard_normal((64, 3, 16, 16)).astype(np.float32)
    int8 = quantize_int8_static(fp32, x, fmt=fmt, per_channel=fmt == "qdq")
    proto = onnx.load_from_string(int8)
    onnx.checker.check_model(proto)
    assert fmt in {p.key: p.value for p in proto.metadata_props}["hwnas.quantization"]
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(int8, options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert ops.count("QLinearConv") == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert "Conv" not in ops and "Add" not in ops and ops.count("QLinearAdd") == 3  # three residual blocks
    ref = session(fp32, threads=1).run(None, {"input": x})[0]
    out = session(int8, threads=1).run(None, {"input": x})[0]
    assert np.corrcoef(ref.ravel(), out.ravel())[0, 1] > 0.98
    with pytest.raises(UserError, match="quantization format 'qop' is not supported; allowed: qdq, qoperator"):
        quantize_int8_static(fp32, x, fmt="qop")


def test_four_bit_groups_hold_15_levels_and_count_half_a_byte(tmp_path: Path, idx_dir: Path) -> None:
    import numpy as np
    import optuna
    import torch

    from compress.lowbit import apply_weight_bits, group_names, weight_layers
    from compress.recipe import sample_recipe
    from compress.report import compress
    from nas.core.config import CompressionSpace, parse_search_config
    from nas.search.study import load_splits
    from nas.space.arch import parse
    from nas.space.builder import build

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
