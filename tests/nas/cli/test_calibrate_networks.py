"""hwnas profile calibrate --networks: fits a profile to whole-network latencies, counts the rows
it skips, notes data, conditions and leave-one-family-out error, and refuses bad files in one line."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nas.cli import main
from nas.hardware.profiles import load_profile

ARCHS = {"ir": ["in_c3_r32-stem_k3_s2_c16-ir_r2_k3_s2_e4_c24-head_c64-fc_c10",
                "in_c3_r48-stem_k3_s2_c16-ir_r3_k5_s2_e6_c32-head_c128-fc_c10"],
         "rb": ["in_c3_r32-stem_k3_s2_c16-rb_r2_s2_c32-head_c64-fc_c10",
                "in_c3_r64-stem_k3_s2_c24-rb_r2_s2_c48-head_c96-fc_c10"]}


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["network", "width", "resolution", "runtime", "precision", "latency_ms",
                                               "family", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_calibrate_networks_writes_a_noted_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"network": a, "runtime": "vitis-ai-3.0", "precision": "int8", "latency_ms": str(1.0 + i + 2 * j),
             "family": fam, "source": "test"}
            for j, (fam, archs) in enumerate(ARCHS.items()) for i, a in enumerate(archs)]
    rows += [{"network": "resnet18", "runtime": "other", "precision": "int8", "latency_ms": "5"},
             {"network": "resnet18", "runtime": "vitis-ai-3.0", "precision": "fp32", "latency_ms": "5"}]
    data = _write(tmp_path / "nets.csv", rows)
    out = tmp_path / "dpu.yaml"
    before = load_profile("zynq-zcu102-dpu")
    assert main(["profile", "calibrate", "zynq-zcu102-dpu", "--networks", str(data), "--precision", "int8",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "on 4 networks of 2 families" in printed and "leave-one-family-out MdAPE" in printed
    after = load_profile(out)
    assert int(after.version) == int(before.version) + 1 and after.model is not None
    note = after.model["int8"].fit
    assert "--networks nets.csv" in note and "4 networks of 2 families" in note and "vitis-ai-3.0" in note
    assert "skipped 2 rows (1 other runtime, 1 other precision)" in note and "Vitis AI 3.0" in note


def test_calibrate_networks_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.yaml"
    assert main(["profile", "calibrate", "edgetpu", "--networks", str(tmp_path / "none.csv"), "--precision", "int8",
                 "--out", str(out)]) == 2
    assert "is not a file" in capsys.readouterr().err
    data = _write(tmp_path / "n.csv", [{"network": "resnet18", "runtime": "x", "precision": "int8", "latency_ms": "1"}])
    assert main(["profile", "calibrate", "edgetpu", "--networks", str(data), "--precision", "int8",
                 "--out", str(out)]) == 2
    assert "no row of n.csv is edgetpu-usb-tflite-cpp at int8" in capsys.readouterr().err
    bad = _write(tmp_path / "b.csv", [{"network": "alexnet", "runtime": "edgetpu-usb-tflite-cpp", "precision": "int8",
                                       "latency_ms": "1"}])
    assert main(["profile", "calibrate", "edgetpu", "--networks", str(bad), "--precision", "int8",
                 "--out", str(out)]) == 2
    assert "network 'alexnet' not allowed" in capsys.readouterr().err
    (tmp_path / "latin1.csv").write_bytes("network,runtime\n\xe9\n".encode("latin-1"))
    assert main(["profile", "calibrate", "edgetpu", "--networks", str(tmp_path / "latin1.csv"), "--precision", "int8",
                 "--out", str(out)]) == 2
    assert "not a readable CSV" in capsys.readouterr().err
    assert not out.exists()
