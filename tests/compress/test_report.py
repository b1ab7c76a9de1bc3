"""The report files of hwnas compress: before and after, from the report data."""
from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from compress.recipe import parse_recipe
from compress.report import Compressed, summary_line, write_report

ROW = {"test_accuracy": 0.8, "file_bytes": 4000, "macs": 1000, "latency_ms": 0.2}
REPORT = {"arch": "in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2", "baseline": ROW,
          "compressed": {**ROW, "test_accuracy": 0.79, "file_bytes": 1000, "latency_ms": 0.1}, "size_ratio": 4.0,
          "macs_ratio": 1.0, "speedup": 2.0, "latency_how": "measured side by side"}


def test_files_and_summary_say_before_and_after(tmp_path: Path) -> None:
    recipe = parse_recipe({"quantize": {"mode": "static"}})
    write_report(Compressed(onnx=b"model", module=nn.Identity(), report=REPORT), tmp_path / "out", name="int8",
                 recipe=recipe)
    assert (tmp_path / "out" / "model.onnx").read_bytes() == b"model"
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == REPORT
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith("# int8") and "| before | 80.00% | 4,000 | 1,000 | 0.2000 |" in md
    assert "| after | 79.00% | 1,000 | 1,000 | 0.1000 |" in md and "Latency: measured side by side." in md
    assert summary_line(REPORT) == ("accuracy 80.00% -> 79.00%, file 4,000 -> 1,000 B (4.00x smaller), MACs x1.00, "
                                    "latency 0.2000 -> 0.1000 ms (2.00x) [measured side by side]")
