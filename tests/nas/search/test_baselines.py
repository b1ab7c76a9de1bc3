"""`hwnas baselines`: the handcrafted grid trained like trials and shown beside the front."""
from __future__ import annotations

from pathlib import Path

import yaml

from nas.core.config import parse_search_config
from nas.search.baselines import baseline_grid
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
