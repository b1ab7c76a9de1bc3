"""A quickstart-sized supernet end to end from the CLI: train it, search it on the host CPU and
for a device profile, check that a front model's exported file reproduces its recorded accuracy and
that its arch string rebuilds it, and fine-tune a front model from its inherited weights."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
import yaml

from nas.cli import main
from nas.data.datasets import load_idx_dataset
from nas.data.splits import split
from nas.deploy.export import onnx_accuracy
from nas.search.record import result_of
from nas.search.study import load_run_config, open_study
from nas.space.arch import parse
from nas.space.builder import build
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, idx_dir: Path) -> Path:
    cfg = tiny_config(idx_dir, trials=5, population=4, strategy="supernet",
                      supernet=str(tmp_path / "sn" / "supernet.pt"))
    cfg["space"]["block_types"] = ["ir", "fir", "ds"]
    # One epoch on tiny data: AdamW gets the subnetworks off chance level there, SGD (the default,
    # better over a real budget) does not; this test is about the workflow, not the optimizer.
    cfg["supernet"] = {"epochs": 1, "batch_size": 50, "optimizer": "adamw", "lr": 0.02, "bn_images": 200}
    path = tmp_path / "tiny-supernet.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _trials(run: Path) -> list[optuna.trial.FrozenTrial]:
    study = open_study(load_run_config(run), f"sqlite:///{run / 'study.db'}", create=False)
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def test_supernet_trains_and_searches_end_to_end(tmp_path: Path, idx_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, idx_dir)
    assert main(["search", str(cfg), "--out", str(tmp_path / "early")]) == 2  # no supernet yet: one line
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "early").exists()
    assert main(["supernet", "train", str(cfg), "--out", str(tmp_path / "sn")]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "ETA" in out and (tmp_path / "sn" / "supernet.pt").exists()
    assert "supernet space derived" in out and "fir, ds left to a per-trial search" in out
    assert main(["supernet", "train", str(cfg), "--out", str(tmp_path / "sn")]) == 0  # resumed: nothing left
    assert main(["supernet", "info", str(tmp_path / "sn" / "supernet.pt")]) == 0

    run = tmp_path / "run"
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    complete = _trials(run)
    assert len(complete) >= 2
    # the search searches the supernet's derived space: one block kind, no expansion 1
    assert all("-fir_" not in t.user_attrs["arch"] and "-ds_" not in t.user_attrs["arch"]
               and "_e1_" not in t.user_attrs["arch"] for t in complete)
    raw = load_idx_dataset("mnist", idx_dir, download_ok=False)
    splits = split(raw, val_fraction=0.2, seed=0)
    for trial in complete:
        result = result_of(trial)
        assert result is not None and result.inherited is not None and "supernet" in result.inherited
        assert result.train_loss == () and result.latency_kind == "measured"
        spec = parse(result.arch)
        assert spec.format() == result.arch
        model = build(spec)  # the arch string rebuilds the network the weights belong to
        model.load_state_dict(torch.load(run / result.weights_path, weights_only=True))
        onnx_bytes = (run / result.onnx_path).read_bytes()
        measured = onnx_accuracy(onnx_bytes, splits.x_test, splits.y_test, preprocess=splits.preprocess,
                                 resolution=spec.resolution)
        assert measured == pytest.approx(result.test_accuracy, abs=1e-9)  # the file reproduces the record
    front = pd.read_csv(run / "front.csv")
    assert len(front) >= 1 and (run / "front.png").exists()

    device_run = tmp_path / "device"
    assert main(["search", str(cfg), "--profile", "jetson-nano", "--trials", "3", "--out", str(device_run)]) == 0
    device = [result_of(t) for t in _trials(device_run)]
    assert device and all(r is not None and r.latency_kind == "predicted" and r.profile == "jetson-nano"
                          for r in device)
    stored = load_run_config(device_run)
    assert stored.name == "tiny-jetson-nano" and stored.search.supernet == str(tmp_path / "sn" / "supernet.pt")

    number = int(front["trial"].iloc[0])
    weights = str(run / "models" / f"{number:04d}" / "weights.pt")
    assert main(["train", str(run), "--trial", str(number), "--init", "inherited", "--init-from", weights,
                 "--stage", "x"]) == 2  # two starting points: one line, nothing trained
    assert "--init inherited and --init-from" in capsys.readouterr().err
    assert not (run / "models" / f"{number:04d}" / "final-x").exists()
    assert main(["train", str(run), "--trial", str(number), "--epochs", "1", "--init", "inherited"]) == 0
    metrics = json.loads((run / "models" / f"{number:04d}" / "final" / "metrics.json").read_text())
    assert metrics["init_from"]["path"].endswith("weights.pt") and metrics["test_accuracy"] > 0
