"""``hwnas compress`` on a user's own model: prune to a MAC or latency budget through the dependency
graph, quantize, export ONNX and int8 TFLite, each file measured on itself."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import optuna
import pandas as pd
import pytest
import torch
from PIL import Image

from compress.distill import fine_tune
from nas.cli import main
from nas.data.splits import Preprocess, Splits
from nas.deploy.contract import CONTRACT_KEY
from nas.deploy.own_model import from_module, module_to_onnx
from nas.hardware.own_pricing import price_own
from nas.hardware.profiles import load_profile
from nas.search.own_record import RecipeTrial
from nas.search.own_search import RecipeSpace, search_recipes
from tests import own_models
from tests.conftest import pattern_images

SIZE = 16


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image folder of 4 learnable classes, the user's model file, and weights trained by a plain loop."""
    root = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(0)
    for part, n in (("train", 240), ("test", 60)):
        labels = rng.integers(0, 4, n)
        for i, (img, y) in enumerate(zip(pattern_images(labels, SIZE, rng, 3), labels, strict=True)):
            (root / "data" / part / f"c{y}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "data" / part / f"c{y}" / f"{i}.png")
    shutil.copy(own_models.__file__, root / "nets.py")
    net = own_models.resnet()
    x = np.stack([np.asarray(Image.open(p)) for p in sorted((root / "data" / "train").glob("*/*.png"))])
    y = np.array([int(p.parent.name[1]) for p in sorted((root / "data" / "train").glob("*/*.png"))])
    fine_tune(net, x, y, preprocess=Preprocess(SIZE, 3, (0.3,) * 3, (0.3,) * 3, "RGB"), resolution=SIZE,
              iterations=60, lr=3e-3)
    torch.save(net.state_dict(), root / "w.pt")
    (root / "model.onnx").write_bytes(module_to_onnx(net, (1, 3, SIZE, SIZE)))
    return root


def _compress(user: Path, model: str, recipe: str, out: str, *extra: str) -> int:
    return main(["compress", str(user / model), "--data", str(user / "data"), "--recipe", recipe,
                 "--out", str(user / out), "--mean", "0.3", "--std", "0.3", *extra])


def test_prune_to_half_the_macs_quantize_and_export_both_formats(user: Path) -> None:
    recipe = ("{prune: {target_macs: 0.5, finetune_iters: 20, distill: {}}, "
              "quantize: {mode: static, calibration_images: 32}}")
    assert _compress(user, "nets.py:resnet", recipe, "out", "--weights", str(user / "w.pt"), "--input-shape",
                     f"3,{SIZE},{SIZE}", "--profile", "raspberry-pi4", "--format", "onnx", "--format", "tflite") == 0
    out = user / "out"
    report = json.loads((out / "report.json").read_text())
    assert report["prune"]["met"] and report["prune"]["after"] <= 0.5 * report["prune"]["before"]
    assert report["prune"]["left_dense"] == {"fc": "the classifier's outputs"}
    files = report["files"]
    assert set(files) == {"original.onnx", "model.onnx", "model_int8.onnx", "model_int8.tflite"}
    assert {p.name for p in out.iterdir()} == {"model.onnx", "model_int8.onnx", "model_int8.tflite", "report.json",
                                               "report.md"}
    for name in ("model.onnx", "model_int8.onnx", "model_int8.tflite"):  # measured on the file written
        assert files[name]["bytes"] == (out / name).stat().st_size and 0 <= files[name]["test_accuracy"] <= 1
    assert files["model_int8.onnx"]["predicted"]["latency_kind"] == "predicted"
    assert files["model_int8.onnx"]["predicted"]["macs"] <= 0.5 * files["original.onnx"]["predicted"]["macs"]
    assert "edgetpu_ready" in json.dumps(files["model_int8.tflite"])
    contract = json.loads({p.key: p.value for p in onnx.load(str(out / "model_int8.onnx")).metadata_props}[CONTRACT_KEY])
    assert contract["mean"] == [0.3] * 3 and contract["input"]["shape"][1:] == [3, SIZE, SIZE]
    assert report["size_ratio"] > 3 and report["speedup"] > 0


@pytest.mark.parametrize("share, met", [(0.85, True), (0.1, False)])
def test_prune_to_a_latency_budget_on_a_profile(user: Path, share: float, met: bool,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    before = price_own(from_module(own_models.resnet(), (3, SIZE, SIZE)), load_profile("raspberry-pi4")).latency_ms
    assert before is not None
    budget = share * before  # ms on the Raspberry Pi 4; 10% is below the profile's fixed per-inference cost
    assert _compress(user, "nets.py:resnet", f"{{prune: {{target_latency_ms: {budget}, finetune_iters: 5}}}}",
                     f"lat{share}", "--weights", str(user / "w.pt"), "--input-shape", f"3,{SIZE},{SIZE}",
                     "--profile", "raspberry-pi4") == 0
    report = json.loads((user / f"lat{share}" / "report.json").read_text())
    prune = report["prune"]
    assert prune["cost"] == "latency_ms" and prune["before"] == pytest.approx(before) and prune["met"] is met
    assert (budget >= prune["after"]) is met and prune["after"] < before
    assert report["files"]["model.onnx"]["predicted"]["latency_ms"] == pytest.approx(prune["after"])
    assert ("NOT MET" in capsys.readouterr().out) is not met


def test_an_onnx_file_is_quantized_with_power_of_two_scales(user: Path) -> None:
    recipe = "{quantize: {mode: static, per_channel: false, activations: int8, scales: pof2, calibration_images: 16}}"
    assert _compress(user, "model.onnx", recipe, "pof2", "--profile", "zynq-zcu102-dpu") == 0
    report = json.loads((user / "pof2" / "report.json").read_text())
    assert report["files"]["model_int8.onnx"]["test_accuracy"] > 0.5
    assert report["files"]["model_int8.onnx"]["predicted"]["profile"].startswith("zynq-zcu102-dpu")


@pytest.mark.parametrize("model, recipe, extra, message", [
    ("model.onnx", "{prune: {ratio: 0.5}}", [], "pruning needs the PyTorch model"),
    ("model.onnx", "{quantize: {mode: static}}", ["--format", "tflite"], "converted from the PyTorch model"),
    ("nets.py:resnet", "{quantize: {mode: static}}", ["--input-shape", "1,16,16"], "cannot be exported to ONNX at input [1, 1, 16, 16]"),
    ("nets.py:resnet", "{prune: {ratio: 0.0, stage_ratios: {nope: 0.5}}}", ["--input-shape", "3,16,16"],
     "prune.stage_ratios names nope; the model's stages: stem, layer1, layer2, layer3"),
])
def test_what_cannot_be_done_is_one_line(user: Path, model: str, recipe: str, extra: list[str], message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert _compress(user, model, recipe, "bad", *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not (user / "bad").exists()


def test_compression_search_writes_a_front_of_measured_files_and_resumes(user: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--weights", str(user / "w.pt"), "--input-shape", f"3,{SIZE},{SIZE}", "--profile", "raspberry-pi4",
            "--search", "--finetune-iters", "5", "--budget", "peak_memory_mb=100"]
    base = ["compress", str(user / "nets.py:resnet"), "--data", str(user / "data"), "--out", str(user / "search")]
    assert main([*base, "--trials", "3", *args]) == 0
    assert main([*base, "--trials", "4", *args]) == 0  # resumes: one more trial, not four
    out = capsys.readouterr().out
    assert "[  4/4]" in out and "[  1/4]" not in out and "ETA" in out
    front = pd.read_csv(user / "search" / "front.csv")
    assert len(front) >= 1 and set(front.latency_kind) == {"predicted"}
    for row in front.itertuples():  # every row is a file on disk, measured on itself
        assert (user / "search" / str(row.file)).stat().st_size == row.file_bytes
    study = optuna.load_study(study_name="compress", storage=f"sqlite:///{user / 'search' / 'study.db'}")
    assert len(study.trials) == 4 and all(RecipeTrial.of(t).feasible for t in study.trials if t.values)
    assert main([*base, "--trials", "4", *args[:-1], "file_mb=1"]) == 2  # other settings: refused, kept


def test_a_recipe_proposed_again_reuses_the_measured_file_not_another_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 96)
    images = np.stack(pattern_images(labels, SIZE, rng, 3))
    pre = Preprocess(SIZE, 3, (0.3,) * 3, (0.3,) * 3, "RGB")
    splits = Splits("t", tuple("abcd"), images, labels, images[:32], labels[:32], images[32:64], labels[32:64], pre)
    own = from_module(own_models.resnet(), (3, SIZE, SIZE), "resnet")
    # two recipes only (as it is; pruned to half its MACs), five trials: at least three repeats
    space = RecipeSpace(finetune_iters=2, criteria=("l1",), keep_macs=(0.5,), quantize=("fp32",),
                        stages=("none",), stage_ratios=(0.0,))
    search_recipes(own, splits, load_profile("raspberry-pi4"), tmp_path, trials=5, space=space)
    study = optuna.load_study(study_name="compress", storage=f"sqlite:///{tmp_path / 'study.db'}")
    records = {t.number: RecipeTrial.of(t) for t in study.trials}
    repeats = [n for n, r in records.items() if r.same_as is not None]
    assert len(repeats) >= 3
    for n in repeats:
        original = records[n].same_as
        assert original is not None and records[original].same_as is None
        assert study.trials[n].values == study.trials[original].values
        assert records[n].file == records[original].file and not (tmp_path / "trials" / str(n)).exists()
    front = pd.read_csv(tmp_path / "front.csv")
    assert not set(front["trial"]) & set(repeats) and front["recipe"].is_unique
