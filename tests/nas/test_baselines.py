"""`hwnas baselines`: the handcrafted grid trained like trials and shown beside the front."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from nas.search.baselines import baseline_grid
from nas.cli import main
from nas.core.config import parse_search_config
from nas.data.splits import split
from nas.data.datasets import load_idx_dataset
from nas.deploy.export import onnx_accuracy
from nas.search.study import find_study, load_run_config
from tests.conftest import tiny_config

GRID = {"mobilenet_v2_widths": [0.25], "mobilenet_v2_resolutions": [12], "shufflenet_v1_groups": [2],
        "shufflenet_v1_width": 0.25, "shufflenet_v2_widths": [0.5]}


def _config(tmp_path: Path, idx_dir: Path, **search: object) -> Path:
    data = tiny_config(idx_dir, trials=2, **search)
    data["baselines"] = GRID
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grid_names_and_input_fit(tmp_path: Path) -> None:
    data = tiny_config(tmp_path)
    data["baselines"] = GRID
    grid = baseline_grid(parse_search_config(data), in_chs=1, classes=10)
    assert [b.name for b in grid] == ["mobilenet_v2_0.25x_r12", "shufflenet_v1_0.25x_g2_r16", "shufflenet_v2_0.5x_r16"]
    assert all(b.spec.in_chs == 1 and b.spec.num_classes == 10 for b in grid)
    assert grid[0].spec.resolution == 12 and grid[1].spec.resolution == 16


@pytest.mark.slow
def test_baselines_run_beside_the_search(tmp_path: Path, idx_dir: Path) -> None:
    run = tmp_path / "run"
    cfg = _config(tmp_path, idx_dir)
    assert main(["baselines", str(cfg), "--out", str(run)]) == 0
    front = pd.read_csv(run / "front.csv")
    assert list(front["source"]) == ["baseline"] * 3
    assert set(pd.read_csv(run / "baselines.csv")["state"]) == {"COMPLETE"}
    s = split(load_idx_dataset("mnist", idx_dir), val_fraction=0.2, seed=0)
    for row in front.itertuples():
        resolution = int(row.arch.split("_r")[1].split("-")[0])
        measured = onnx_accuracy(run / row.onnx_path, s.x_test, s.y_test, preprocess=s.preprocess,
                                 resolution=resolution)
        assert measured == pytest.approx(row.accuracy, abs=1e-4) and row.name in row.onnx_path
    assert main(["baselines", str(cfg), "--out", str(run)]) == 0  # resumed: nothing to redo
    bstudy = find_study(load_run_config(run), f"sqlite:///{run / 'study.db'}", "tiny-baselines")
    assert bstudy is not None and len(bstudy.trials) == 3
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    front = pd.read_csv(run / "front.csv")
    assert set(front["source"]) == {"search", "baseline"} and (front["source"] == "baseline").sum() == 3
    assert front["dominated_by_front"].dtype == bool and (run / "front.png").stat().st_size > 0
    assert main(["front", str(run)]) == 0


@pytest.mark.slow
def test_over_budget_baselines_are_rejected_unless_told_otherwise(tmp_path: Path, idx_dir: Path) -> None:
    cfg = _config(tmp_path, idx_dir, budgets={"macs": 1000})
    assert main(["baselines", str(cfg), "--out", str(tmp_path / "a")]) == 0
    states = pd.read_csv(tmp_path / "a" / "baselines.csv")["state"]
    assert set(states) == {"PRUNED"} and len(pd.read_csv(tmp_path / "a" / "front.csv")) == 0
    assert main(["baselines", str(cfg), "--out", str(tmp_path / "b"), "--ignore-budgets"]) == 0
    table = pd.read_csv(tmp_path / "b" / "baselines.csv")
    assert set(table["state"]) == {"COMPLETE"} and not table["feasible"].any()
    assert table["infeasible_reason"].str.startswith("macs").all()
