from __future__ import annotations

import json
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna_dashboard
import pytest
import yaml

from nas.cli import main
from nas.hardware.profiles import load_profile
from tests.conftest import tiny_config


@pytest.mark.parametrize("command", [[], ["search"], ["front"], ["export"], ["dashboard"], ["compress"], ["cost"],
                                     ["profile", "build"], ["profile", "calibrate"]])
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: hwnas" in capsys.readouterr().out


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


@pytest.mark.slow
def test_front_export_and_dashboard_on_a_run(tmp_path: Path, idx_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(idx_dir, trials=2)))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["front", str(run)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["export", str(run), "--trial", "1"]) == 0
    assert "exported trial 1: " in capsys.readouterr().out
    exported = run / "models" / "0001"
    assert (exported / "model.onnx").stat().st_size > 0
    assert json.loads((exported / "metrics.json").read_text())["trial"] == 1
    assert main(["export", str(run), "--trial", "99"]) == 2
    assert "trial 99 has no exported model; allowed: completed trials" in capsys.readouterr().err

    app = optuna_dashboard.wsgi(f"sqlite:///{run / 'study.db'}")

    def get(path: str) -> dict:
        env: dict = {}
        setup_testing_defaults(env)
        env.update(PATH_INFO=path, REQUEST_METHOD="GET")
        status: list[str] = []
        body = b"".join(app(env, lambda s, h, exc=None: status.append(s)))
        assert status[0].startswith("200")
        return json.loads(body)

    (summary,) = get("/api/studies")["study_summaries"]
    study = get(f"/api/studies/{summary['study_id']}")
    assert len(study["trials"]) == 2
    for trial in study["trials"]:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert attrs["arch"].startswith("in_c1_r") and "macs" in attrs and "peak_memory_mb" in attrs


def test_cost_prices_an_arch_and_a_zoo_network(capsys: pytest.CaptureFixture[str]) -> None:
    arch = "in_c1_r8-stem_k3_s1_c8-ir_r1_k3_s1_e1_c8-head_c16-fc_c2"
    assert main(["cost", arch, "--json", "--layers"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"macs", "parameters", "weight_mb", "peak_activation_mb", "latency_ms", "latency_kind", "profile",
            "profile_version"} <= set(report)
    assert report["macs"] == 21536 and report["latency_kind"] == "measured" and report["latency_ms"] > 0
    assert report["profile"] == "cpu" and "1 thread(s)" in report["latency_how"]
    assert sum(layer["macs"] for layer in report["layers"]) == 21536
    assert main(["cost", arch, "--json", "--precision", "int8"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latency_ms"] > 0 and "static int8 QDQ export" in report["latency_how"]
    assert report["weight_mb"] == pytest.approx(0.00041)
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
    capsys.readouterr()
    assert main(["cost", "--zoo", "mobilenet_v2", "--resolution", "64", "--profile", "zynq-zcu102-dpu", "--precision",
                 "int8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latency_ms"] is None and "not calibrated yet" in report["latency_how"]
    # the ZC706 fit lacks dense convs and the classifier: calibrated with them assumed to run like 1x1 convs
    assert main(["cost", "--zoo", "mobilenet_v2", "--resolution", "64", "--profile", "zynq-zc706", "--precision",
                 "fp16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latency_kind"] == "predicted" and report["latency_ms"] > 0
    assert report["profile_version"] == load_profile("zynq-zc706").version


def test_cost_on_accelerator_profiles_reports_memory_and_unsupported_ops(capsys: pytest.CaptureFixture[str]) -> None:
    # MobileNetV2 1.0 at int8 holds ~3.5 MB of weights: they fit the Edge TPU's 8 MB. ShuffleNetV1's
    # grouped convs and channel shuffle do not map to the TPU: named in the output.
    assert main(["cost", "--zoo", "mobilenet_v2", "--profile", "edgetpu", "--precision", "int8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights_streamed_mb"] == 0.0 and report["on_chip_mb"] == 8
    assert report["latency_ms"] is None and "not calibrated yet" in report["latency_how"]
    assert main(["cost", "--zoo", "shufflenet_v1", "--groups", "3", "--profile", "edgetpu", "--precision", "int8",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unsupported_kinds"] == ["gconv", "shuffle"] and "cannot run on edgetpu" in report["latency_how"]
    # The Edge TPU compiler maps up to the first op it cannot: the first block's shuffle and all after it
    # run on the host. The stem's pooled output (56x56x24, read by the block's shortcut pool) and the first
    # 1x1 conv's output (56x56x60, read by the shuffle) cross to the host, one byte per int8 element.
    fallback = report["host_fallback"]
    assert fallback["from"] == "blocks.0.branch.1" and fallback["macs_share"] > 0.9
    assert fallback["transfer_mb"] == pytest.approx((56 * 56 * 24 + 56 * 56 * 60) / 1e6)
    assert main(["cost", "--zoo", "shufflenet_v2", "--profile", "zynq-zcu102-dpu", "--precision", "int8",
                 "--json"]) == 0
    fallback = json.loads(capsys.readouterr().out)["host_fallback"]  # the DPU resumes after each shuffle and slice
    from nas.cost.layers import layer_table
    from nas.space.zoo import shufflenet_v2

    moved = [l for l in layer_table(shufflenet_v2()) if l.kind in ("shuffle", "slice")]
    assert fallback["from"] == "blocks.0.shuffle" and fallback["macs_share"] == 0.0
    assert fallback["layers"] == len(moved) == 42
    assert main(["cost", "--zoo", "mobilenet_v2", "--profile", "edgetpu", "--precision", "fp32"]) == 0
    assert "cannot run fp32; allowed: int8" in capsys.readouterr().out
    assert main(["cost", "--zoo", "mobilenet_v2", "--profile", "jetson-nano", "--precision", "int8"]) == 0
    assert "cannot run int8; allowed: fp32, fp16" in capsys.readouterr().out
