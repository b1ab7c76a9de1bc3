"""front.png is drawn from the tables alone: front, rejected trials, baselines and budgets."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from nas.search.plots import plot_front


def test_plot_draws_both_panels_from_tables(tmp_path: Path) -> None:
    trials = pd.DataFrame({"state": ["COMPLETE", "COMPLETE", "PRUNED"], "accuracy": [0.8, 0.9, None],
                           "macs": [100, 200, 900], "latency_ms": [0.1, 0.2, None],
                           "rejected_before_training": [False, False, True]})
    front = pd.DataFrame({"source": ["search", "baseline"], "trial": [1, 0], "name": ["", "mobilenet_v2_0.25x"],
                          "accuracy": [0.9, 0.7], "macs": [200, 300], "latency_ms": [0.2, 0.3],
                          "latency_kind": ["measured", "measured"]})
    path = tmp_path / "front.png"
    plot_front(trials, front, budgets={"macs": 500.0, "latency_ms": None}, path=path, title="t", profile="cpu@2")
    width, height = Image.open(path).size
    assert (width, height) == (1440, 552)  # 12 x 4.6 inches at 120 dpi: two panels side by side
