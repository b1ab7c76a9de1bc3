"""What the CLI itself owns: parsing, help, exit codes, one-line errors, and what it prints."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import nas
from nas.cli import main
from nas.cli.parser import build_parser
from nas.cost.costs import count_costs
from nas.space.arch import parse
from nas.space.zoo import mobilenet_v2
from tests.conftest import tiny_config


@pytest.mark.parametrize("command", [[], ["search"], ["front"], ["export"], ["dashboard"], ["compress"], ["cost"],
                                     ["profile", "build"], ["profile", "calibrate"], ["train"], ["predict"],
                                     ["baselines"], ["zoo"], ["supernet", "train"], ["supernet", "info"]])
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: hwnas" in capsys.readouterr().out


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


@pytest.mark.parametrize("argv, message", [
    (["export", "runs/x", "--trial", "1e3"], "hwnas export: argument --trial: invalid int value: '1e3'"),
    (["nope"], "argument command: invalid choice: 'nope'"),
    (["train", "runs/x"], "hwnas train: one of the arguments --trial --front --arch is required"),
])
def test_usage_mistakes_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and err.startswith("hwnas: error: ") and message in err


def test_every_option_and_argument_has_help_text() -> None:
    missing = [f"{parser.prog} {action.dest}" for parser in _parsers(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert not missing, missing


def test_help_imports_no_heavy_library_and_version_prints() -> None:
    # --help answers in well under a second because the parser loads no handler: checked by what is
    # imported, not by a clock (benchmarks/cli_startup.py times it)
    code = ("import sys; from nas.cli.parser import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'optuna', 'onnx', 'numpy', 'pandas', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    version = subprocess.run([sys.executable, "-m", "nas.cli", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"hwnas {nas.__version__}"


@pytest.mark.parametrize("argv, message", [
    (["search", "no-such-config"], "search config 'no-such-config' not found"),
    (["front", "no-such-run"], "no-such-run is not a run folder"),
    (["search", "quickstart", "--trials", "0"], "--trials 0 not allowed"),
])
def test_user_errors_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwnas: error: ") and message in err and err.count("\n") == 1


def test_bad_key_in_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_config(tmp_path)
    data["search"]["budget"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["search", str(path)]) == 2
    assert "search: unknown key 'budget'; allowed: trials, sampler" in capsys.readouterr().err


def test_cost_prices_an_arch_and_a_zoo_network(capsys: pytest.CaptureFixture[str]) -> None:
    arch = "in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"
    assert main(["cost", arch, "--json", "--layers"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"macs", "parameters", "weight_mb", "peak_activation_mb", "latency_ms", "latency_kind", "profile",
            "profile_version"} <= set(report)
    assert report["macs"] == 21536 and report["latency_kind"] == "measured" and report["latency_ms"] > 0
    assert report["profile"] == "cpu" and "1 thread(s)" in report["latency_how"]
    assert sum(layer["macs"] for layer in report["layers"]) == 21536
    assert main(["cost", arch]) == 0
    text = capsys.readouterr().out
    assert text.startswith(arch) and "MACs 21,536" in text and "[measured, profile cpu@" in text
    assert main(["cost", "--zoo", "shufflenet_v1", "--groups", "3", "--resolution", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["arch"].startswith("in_c3_r64-stem_k3_s2_c24_mp1-sh_r4_s2_g3_c240_fg0")


@pytest.mark.parametrize("argv, message", [
    (["cost"], "give an architecture string or --zoo FAMILY"),
    (["cost", "in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-fc_c2", "--zoo", "mobilenet_v2"], "not both"),
    (["cost", "--zoo", "mobilenet_v2", "--groups", "3"], "--groups applies to --zoo shufflenet_v1 only"),
    (["cost", "in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8_x1-fc_c2"], "unknown token 'x1'"),
    (["cost", "--zoo", "mobilenet_v2", "--profile", "jetson-tx1"], "hardware profile 'jetson-tx1' not found"),
])
def test_cost_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_profile_calibrate_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    assert main(["profile", "calibrate", "raspberry-pi4", "--measurements", str(bad), "--metric", "x",
                 "--out", str(tmp_path / "p.yaml")]) == 2
    assert "not a readable JSON table" in capsys.readouterr().err
    good = tmp_path / "t.json"
    good.write_text(json.dumps({"raspi4_latency": {}}))
    assert main(["profile", "calibrate", "raspberry-pi4", "--measurements", str(good), "--metric", "edgegpu_latency",
                 "--out", str(tmp_path / "p.yaml")]) == 2
    assert "metric 'edgegpu_latency' not in the table; allowed: raspi4_latency" in capsys.readouterr().err
    assert main(["profile", "calibrate", "cpu", "--measurements", str(good), "--metric", "raspi4_latency",
                 "--out", str(tmp_path / "p.yaml")]) == 2
    assert "measured profile" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()
    assert main(["cost", "--zoo", "mobilenet_v2", "--width", "-1"]) == 2
    assert "--width -1.0 not allowed" in capsys.readouterr().err


def test_profile_build_refuses_bad_counts_before_probing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "build", "--name", "x", "--out", str(tmp_path / "out"), "--rounds", "0"]) == 2
    assert "--rounds 0 not allowed" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["profile", "build", "--name", "x", "--out", str(tmp_path / "out"), "--n", "3"]) == 2
    assert not (tmp_path / "out").exists()


def test_cost_text_on_an_accelerator_names_memory_runtime_and_why_no_latency(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--zoo", "mobilenet_v2", "--profile", "edgetpu", "--precision", "int8"]) == 0
    text = capsys.readouterr().out
    assert "ms: held-out error) [predicted, profile edgetpu@" in text and "Edge TPU runtime + TFLite" in text
    assert "on-chip parameter memory 8.0 MB: weights fit on chip" in text
    assert main(["cost", "--zoo", "mobilenet_v2", "--profile", "jetson-nano", "--precision", "int8"]) == 0
    assert "cannot run int8; allowed: fp32, fp16" in capsys.readouterr().out


def test_zoo_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    # small inputs: the same rows and code as at each family's published size, priced in seconds
    # (the published MACs and parameters are tests/nas/space/test_zoo.py's)
    assert main(["zoo", "--json", "--classes", "10", "--in-channels", "1", "--resolution", "32"]) == 0
    small = json.loads(capsys.readouterr().out)
    assert all(r["arch"].startswith("in_c1_r32-") and parse(r["arch"]).num_classes == 10 for r in small)
    by_name = {r["name"]: r for r in small}
    row = by_name["mobilenet_v2_1x_32"]
    assert {"name", "family", "width", "resolution", "groups", "arch", "macs", "parameters"} <= set(row)
    expected = mobilenet_v2(resolution=32, classes=10, in_chs=1)
    assert parse(row["arch"]) == expected and row["macs"] == count_costs(expected).macs
    assert by_name["shufflenet_v1_1x_g3_32"]["groups"] == 3
    assert main(["zoo", "--classes", "0"]) == 2
