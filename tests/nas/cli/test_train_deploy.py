"""hwnas train (convergence training, checkpoint, kill -9 and resume), hwnas export --format and
hwnas predict, end to end on a tiny run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nas.cli import main
from nas.deploy import tflite
from nas.deploy.export import onnx_accuracy
from nas.search.study import load_run_config, load_splits
from tests.conftest import Payload, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("deploy")
    raw = tiny_config(idx_dir, trials=2)
    raw["final"] = {"epochs": 2, "batch_size": 50, "lr": 0.01, "threads": 1, "int8_qat_iters": 4}
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["search", str(path), "--out", str(root / "run")]) == 0
    return root / "run"


def _hwnas(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def test_train_is_killed_mid_epoch_and_resumes_from_the_last_checkpoint(run_dir: Path) -> None:
    """kill -9 during the second epoch; the same command continues at epoch 2 and finishes."""
    argv = _hwnas("train", str(run_dir), "--trial", "0", "--epochs", "6", "--stage", "killed")
    checkpoint = run_dir / "models" / "0000" / "final-killed" / "checkpoint.pt"
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists():  # the first epoch is done (written atomically, so whole)
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    time.sleep(0.3)  # now inside epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = torch.load(checkpoint, weights_only=False)
    done = int(state["epoch"])
    assert 1 <= done < 6
    first = [h["loss"] for h in state["history"]]
    assert not (checkpoint.parent / "metrics.json").exists()
    assert not list(checkpoint.parent.glob(".*.tmp"))  # no half-written checkpoint left to confuse a resume
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"epoch {done + 1}/6 (resumed at epoch {done + 1})" in out.stdout
    metrics = json.loads((checkpoint.parent / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4, 5, 6]
    assert [h["loss"] for h in metrics["history"]][:done] == first  # the killed run's epochs are kept
    # a different setting on the same checkpoint is refused, naming it
    metrics_path = checkpoint.parent / "metrics.json"
    metrics_path.unlink()
    bad = subprocess.run(_hwnas("train", str(run_dir), "--trial", "0", "--epochs", "6", "--stage", "killed",
                                "--lr", "0.5"), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "final.lr" in bad.stderr and bad.stderr.count("\n") == 1


def test_train_writes_a_final_measured_on_its_file_and_finals_csv(run_dir: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(run_dir), "--trial", "1", "--train-subset", "400"]) == 0
    out = capsys.readouterr().out
    assert "[1/1] trial 1 epoch 2/2" in out and "ETA" in out and "measured on" in out
    final = run_dir / "models" / "0001" / "final"
    metrics = json.loads((final / "metrics.json").read_text())
    splits = load_splits(load_run_config(run_dir), cache_dir=run_dir.parent / ".cache")
    measured = onnx_accuracy(final / "model.onnx", splits.x_test, splits.y_test, preprocess=splits.preprocess,
                             resolution=int(json.loads((final / "metrics.json").read_text())["arch"]
                                            .split("_r")[1].split("-")[0]))
    assert metrics["test_accuracy"] == pytest.approx(measured, abs=1e-5)
    assert metrics["proxy_test_accuracy"] is not None and len(metrics["history"]) == 2
    finals = (run_dir / "finals.csv").read_text().splitlines()
    assert finals[0].startswith("trial,stage,arch,recipe,proxy_accuracy,final_accuracy") and len(finals) >= 2
    # a finished final is not trained again
    assert main(["train", str(run_dir), "--trial", "1", "--train-subset", "400"]) == 0
    assert "already trained" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--trial", "0", "--train-subset", "x"], "--train-subset 'x' not allowed"),
    (["--trial", "0", "--augment", "rotate"], "final.augment"),
    (["--trial", "0", "--init-from", "w.pt"], "--init-from needs --stage"),
    (["--trial", "99"], "trial 99 is not a completed"),
])
def test_train_bad_input_is_one_line(run_dir: Path, argv: list[str], message: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(not tflite.available(), reason="needs the tflite extra (LiteRT)")
def test_export_tflite_int8_and_predict_follow_the_contract(run_dir: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(run_dir), "--trial", "0", "--format", "tflite", "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    model = run_dir / "models" / "0000" / "model_int8.tflite"
    assert model.exists() and "measured on the file by LiteRT" in out
    assert "Edge TPU" not in out and "edgetpu_compiler" not in out  # the run targets the CPU: the check is moot
    metrics = json.loads((model.parent / "metrics.json").read_text())
    entry = metrics["artifacts"]["tflite-int8"]
    splits = load_splits(load_run_config(run_dir), cache_dir=run_dir.parent / ".cache")
    resolution = tflite.interpreter(model).get_input_details()[0]["shape"][1]
    assert entry["test_accuracy"] == pytest.approx(
        tflite.tflite_accuracy(model, splits.x_test, splits.y_test, preprocess=splits.preprocess,
                               resolution=int(resolution)), abs=1e-5)
    card = (model.parent / "README.md").read_text()
    assert card.startswith("# ") and card.index("## Deploy on cpu") < card.index("## Figures")
    assert "`tflite-int8`" in card and "model_int8.tflite" in card
    # predict: the file alone (its contract) turns test images into the recorded predictions
    images = []
    for i in range(20):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(splits.x_test[i][..., 0]).save(path)
        images.append(str(path))
    assert main(["predict", str(model), *images, "--top", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    predicted = [line.split(": ")[1].split(" ")[0] for line in lines]
    x = tflite.nhwc_inputs(splits.x_test[:20], splits.preprocess, int(resolution))
    expected = [splits.classes[i] for i in tflite.tflite_logits(model, x).argmax(1)]
    assert predicted == expected
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert main(["predict", str(model), str(tmp_path / "junk.png")]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "junk.png"), images[0]]) == 2


@pytest.mark.skipif(not tflite.available(), reason="needs the tflite extra (LiteRT)")
def test_a_finals_int8_export_also_tries_its_qat_copy(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(run_dir), "--trial", "0", "--epochs", "1", "--train-subset", "200", "--stage", "qat"]) == 0
    assert main(["export", str(run_dir), "--trial", "0", "--final", "qat", "--format", "tflite", "--precision",
                 "int8"]) == 0
    assert "QAT for the int8 file: 4 steps" in capsys.readouterr().out
    entry = json.loads((run_dir / "models" / "0000" / "final-qat" / "metrics.json").read_text())["artifacts"]
    val = entry["tflite-int8"]["int8_route_val_accuracy"]
    assert {"aiq", "qat+aiq"} <= set(val) and entry["tflite-int8"]["int8_route"] in val
    assert entry["tflite-int8"]["val_accuracy"] == pytest.approx(max(val.values()), abs=1e-5)


def test_export_onnx_int8_is_measured_on_its_file(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(run_dir), "--trial", "1", "--format", "onnx", "--precision", "int8"]) == 0
    folder = run_dir / "models" / "0001"
    entry = json.loads((folder / "metrics.json").read_text())["artifacts"]["onnx-int8"]
    splits = load_splits(load_run_config(run_dir), cache_dir=run_dir.parent / ".cache")
    arch = (folder / "arch.txt").read_text().strip()
    resolution = int(arch.split("_r")[1].split("-")[0])
    assert entry["test_accuracy"] == pytest.approx(
        onnx_accuracy(folder / "model_int8.onnx", splits.x_test, splits.y_test, preprocess=splits.preprocess,
                      resolution=resolution), abs=1e-5)
    assert np.isfinite(entry["host_latency_ms"])


def test_a_short_schedule_trains_whatever_its_step_count(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 1 epoch of 4 steps made OneCycleLR divide by zero; every step count now trains
    for subset in ("50", "100", "200"):
        assert main(["train", str(run_dir), "--trial", "0", "--epochs", "1", "--train-subset", subset,
                     "--stage", f"short{subset}"]) == 0, capsys.readouterr().err
        assert (run_dir / "models" / "0000" / f"final-short{subset}" / "metrics.json").is_file()


def test_a_refused_init_from_leaves_nothing_behind(run_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, foreign)
    assert main(["train", str(run_dir), "--trial", "0", "--init-from", str(foreign), "--stage", "warm"]) == 2
    err = capsys.readouterr().err
    assert "not weights of this architecture" in err and err.count("\n") == 1 and "\x1b" not in err
    assert not (run_dir / "models" / "0000" / "final-warm").exists()


def test_a_checkpoint_never_runs_code(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    folder = run_dir / "models" / "0000" / "final-evil"
    folder.mkdir(parents=True)
    torch.save({"epoch": 1, "payload": Payload(marker)}, folder / "checkpoint.pt")
    torch.load(folder / "checkpoint.pt", weights_only=False)  # the payload works when unpickled freely
    assert marker.exists()
    marker.unlink()
    assert main(["train", str(run_dir), "--trial", "0", "--epochs", "1", "--stage", "evil"]) == 2
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and err.count("\n") == 1 and "\x1b" not in err
    assert not marker.exists()
