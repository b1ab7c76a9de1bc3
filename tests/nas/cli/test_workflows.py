"""End-to-end runs of the CLI on generated data: a search and its outputs, front, export and the
dashboard, a journal storage, baselines beside a search, and a host profile built, calibrated and
searched on."""
from __future__ import annotations

import json
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import numpy as np
import onnx
import optuna
import optuna_dashboard
import pandas as pd
import pytest
import yaml

from compress.recipe import load_recipe, parse_recipe
from nas.cli import main
from nas.data.datasets import load_idx_dataset
from nas.data.splits import split
from nas.deploy.export import onnx_accuracy, read_metadata
from nas.deploy.host_latency import session
from nas.deploy.tflite import available as tflite_available
from nas.hardware.profile_build import FORMAT, load_measurements
from nas.hardware.profiles import load_profile
from nas.search.record import result_of
from nas.search.study import find_study, load_run_config, open_study
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def _config_file(tmp_path: Path, idx_dir: Path, **search: object) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(idx_dir, **search)))
    return path


def _study(run_dir: Path) -> optuna.Study:
    return open_study(load_run_config(run_dir), f"sqlite:///{run_dir / 'study.db'}", create=False)


def test_search_writes_every_output(tmp_path: Path, idx_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["search", str(_config_file(tmp_path, idx_dir)), "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "[  3/3]" in printed and "ETA" in printed and f"front: {run / 'front.csv'}" in printed
    # inside each trial: its training, step by step at each epoch's end, with loss and ETA
    assert printed.count("training step") >= 9 and "epoch 3/3, loss " in printed and "train acc" in printed
    assert "exporting and measuring model.onnx" in printed
    for name in ("study.db", "trials.csv", "front.csv", "front.png", "config.yaml"):
        assert (run / name).stat().st_size > 0, name
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 3 and set(trials["state"]) == {"COMPLETE"}
    front = pd.read_csv(run / "front.csv")
    assert {"trial", "arch", "accuracy", "macs", "params", "latency_ms", "peak_memory_mb", "onnx_path"} <= set(front)
    assert len(front) >= 1
    s = split(load_idx_dataset("mnist", idx_dir), val_fraction=0.2, seed=0)
    for row in front.itertuples():
        model_dir = run / "models" / f"{row.trial:04d}"
        assert (model_dir / "arch.txt").read_text().strip() == row.arch
        metrics = json.loads((model_dir / "metrics.json").read_text())
        assert metrics["arch"] == row.arch and metrics["latency_kind"] == "measured"
        meta = read_metadata(run / row.onnx_path)
        assert meta["hwnas.arch"] == row.arch
        resolution = json.loads(meta["hwnas.input_shape"])[-1]
        measured = onnx_accuracy(run / row.onnx_path, s.x_test, s.y_test, preprocess=s.preprocess,
                                 resolution=resolution)
        assert measured == pytest.approx(row.accuracy, abs=1e-4)
    best = _study(run).trials[int(front.loc[0, "trial"])]
    for key in ("arch", "seed", "macs", "parameters", "peak_memory_mb", "latency_ms", "latency_how",
                "val_accuracy", "test_accuracy", "onnx_path", "weights_path", "profile", "profile_version"):
        assert key in best.user_attrs, key
    assert front["accuracy"].max() > 0.3  # generated classes are learnable; chance is 0.1


def test_journal_storage_runs_and_resumes(tmp_path: Path, idx_dir: Path) -> None:
    run = tmp_path / "run"
    journal = f"journal:{tmp_path / 'study.log'}"
    cfg = _config_file(tmp_path, idx_dir, trials=1)
    assert main(["search", str(cfg), "--out", str(run), "--storage", journal]) == 0
    assert (run / "storage.url").read_text().strip() == journal and (tmp_path / "study.log").stat().st_size > 0
    assert main(["search", str(cfg), "--out", str(run), "--trials", "2"]) == 0  # storage.url is remembered
    assert len(pd.read_csv(run / "trials.csv")) == 2
    assert main(["front", str(run)]) == 0


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

    summaries = {s["study_name"]: s for s in get("/api/studies")["study_summaries"]}
    assert set(summaries) == {"tiny", "tiny-workers"}  # the search and the worker processes that ran it
    study = get(f"/api/studies/{summaries['tiny']['study_id']}")
    assert len(study["trials"]) == 2
    for trial in study["trials"]:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert attrs["arch"].startswith("in_c1_r") and "macs" in attrs and "peak_memory_mb" in attrs
        assert {"model.onnx", "weights.pt"} <= {a["filename"] for a in trial["artifacts"]}  # offered per trial


GRID = {"mobilenet_v2_widths": [0.25], "mobilenet_v2_resolutions": [12], "shufflenet_v1_groups": [2],
        "shufflenet_v1_width": 0.25, "shufflenet_v2_widths": [0.5]}


def _baselines_config(tmp_path: Path, idx_dir: Path, **search: object) -> Path:
    data = tiny_config(idx_dir, trials=2, **search)
    data["baselines"] = GRID
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_baselines_run_beside_the_search(tmp_path: Path, idx_dir: Path) -> None:
    run = tmp_path / "run"
    cfg = _baselines_config(tmp_path, idx_dir)
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


def test_over_budget_baselines_are_rejected_unless_told_otherwise(tmp_path: Path, idx_dir: Path) -> None:
    cfg = _baselines_config(tmp_path, idx_dir, budgets={"macs": 1000})
    assert main(["baselines", str(cfg), "--out", str(tmp_path / "a")]) == 0
    states = pd.read_csv(tmp_path / "a" / "baselines.csv")["state"]
    assert set(states) == {"PRUNED"} and len(pd.read_csv(tmp_path / "a" / "front.csv")) == 0
    assert main(["baselines", str(cfg), "--out", str(tmp_path / "b"), "--ignore-budgets"]) == 0
    table = pd.read_csv(tmp_path / "b" / "baselines.csv")
    assert set(table["state"]) == {"COMPLETE"} and not table["feasible"].any()
    assert table["infeasible_reason"].str.startswith("macs").all()
def test_build_then_calibrate_gives_a_working_host_profile(tmp_path: Path, idx_dir: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "build", "--name", "tiny", "--out", str(tmp_path), "--n", "24", "--repeats", "5",
                 "--rounds", "2"]) == 0
    data = load_measurements(tmp_path / "tiny-measurements.json")
    assert data["format"] == FORMAT and len(data["measurements"]) == 48  # 24 networks x fp32, int8
    cond = data["conditions"]
    assert cond["threads"] == 1 and cond["repeats"] == 5 and cond["runtime"].startswith("onnxruntime")
    assert cond["rounds"] == 2 and "median over rounds" in cond["statistic"]
    for row in data["measurements"]:  # the figure is the median of the two passes: their mean
        assert len(row["round_ms"]) == 2 and row["latency_ms"] == pytest.approx(np.mean(row["round_ms"]))
    assert load_profile(tmp_path / "tiny.yaml").model is None  # skeleton: version 1, uncalibrated
    assert main(["profile", "calibrate", str(tmp_path / "tiny.yaml"), "--measurements",
                 str(tmp_path / "tiny-measurements.json")]) == 0
    assert "[fp32]: held-out half MdAPE" in capsys.readouterr().out
    profile = load_profile(tmp_path / "tiny.yaml")
    assert profile.version == "2" and set(profile.model or {}) == {"fp32", "int8"}
    assert "hwnas profile build" in (profile.model or {})["fp32"].fit
    arch = "in_c1_r16-stem_k3_s2_c16-ir_r1_k3_s1_e3_c16-head_c64-fc_c10"
    for precision in ("fp32", "int8"):
        assert main(["cost", arch, "--profile", str(tmp_path / "tiny.yaml"), "--precision", precision, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["latency_kind"] == "predicted" and report["latency_ms"] > 0
        assert report["profile"] == "tiny" and report["profile_version"] == "2"

    # and a search can target it: latency objective and budget on its prediction
    config = tiny_config(idx_dir, trials=1, profile=str(tmp_path / "tiny.yaml"))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    assert main(["search", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run")]) == 0
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials
    r = result_of(trial)
    assert r is not None and r.latency_kind == "predicted" and r.profile == "tiny"
    assert r.latency_ms == r.predicted["tiny"].ms and (r.latency_ms or 0) > 0


@pytest.mark.slow
def test_compress_a_trained_trial_end_to_end(tmp_path: Path, idx_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(idx_dir, trials=1)))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    capsys.readouterr()
    recipe = ("{prune: {criterion: l1, ratio: 0.5, round_to: 2, finetune_iters: 3, batch_size: 16, "
              "distill: {temperature: 2, alpha: 0.5}}, quantize: {mode: static, calibration_images: 16}}")
    assert main(["compress", str(run / "trials" / "0000"), "--recipe", recipe, "--name", "r"]) == 0
    assert "x smaller" in capsys.readouterr().out
    out = run / "trials" / "0000" / "compressed" / "r"
    onnx.checker.check_model(onnx.load(str(out / "model.onnx")))
    report = json.loads((out / "report.json").read_text())
    assert {"baseline", "compressed", "size_ratio", "latency_ratio", "accuracy_drop_points"} <= set(report)
    assert report["compressed"]["macs"] <= report["baseline"]["macs"]
    # (at this toy size the QDQ scales and nodes outweigh the 4x smaller weights: no size assert here)
    weights = [t for t in onnx.load(str(out / "model.onnx")).graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    meta = read_metadata(out / "model.onnx")
    assert meta["hwnas.precision"] == "int8"
    assert parse_recipe(json.loads(meta["hwnas.recipe"])) == load_recipe(recipe)  # the recipe travels with the file
    x = __import__("numpy").zeros((1, 1, *json.loads(meta["hwnas.input_shape"])[2:]), dtype="float32")
    assert session(out / "model.onnx", threads=1).run(None, {"input": x})[0].shape == (1, 10)
    assert main(["compress", str(tmp_path), "--recipe", "{quantize: {mode: fp16}}"]) == 2
    assert "is not a model folder of a run" in capsys.readouterr().err


@pytest.mark.slow
def test_search_with_compression_knobs_reports_the_compressed_file(tmp_path: Path, idx_dir: Path) -> None:
    config = tiny_config(idx_dir, trials=3)
    config["compression"] = {"prune_criteria": ["l1"], "prune_ratios": [0.5], "finetune_iters": 2,
                             "quantize": ["static"], "calibration_images": 16, "weight_bits": [8, 4]}
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    recipes = []
    for t in done:
        r = result_of(t)
        assert r is not None and r.recipe is not None and r.costs is not None and r.onnx_path is not None
        recipe = parse_recipe(json.loads(r.recipe))  # the recipe round-trips through trial attrs
        recipes.append(recipe)
        assert recipe.precision == "int8" and r.precision == "int8" and r.pruned_channels
        model = run / r.onnx_path
        assert read_metadata(model)["hwnas.precision"] == "int8"
        assert r.file_bytes == model.stat().st_size
        # costs are the compressed network's: int8 weights are 1 byte per parameter, 4-bit ones half
        four = [g for g, b in recipe.quantize.weight_bits.items() if b == 4]  # type: ignore[union-attr]
        assert set(four) == {k[len("c.bits."):] for k, v in t.params.items() if k.startswith("c.bits.") and v == 4}
        if four:
            assert "runs them as int8" in (r.weight_bits_note or "")
            assert r.costs.weight_mb < r.costs.params / 1e6
        else:
            assert r.costs.weight_mb == pytest.approx(r.costs.params / 1e6, rel=0.2)
    assert any(recipe.quantize and recipe.quantize.weight_bits for recipe in recipes)  # some 4-bit group


@pytest.mark.slow
@pytest.mark.skipif(not tflite_available(), reason="needs the tflite extra (LiteRT)")
def test_compress_a_model_folder_of_a_tflite_target(tmp_path: Path, idx_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A Raspberry Pi run's models/<n> holds .tflite files only: compress takes it, writes the
    target's int8 file from the compressed network and reports the Pi's predicted latency."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(idx_dir, trials=1, profile="raspberry-pi4")))
    run = tmp_path / "run"
    assert main(["search", str(cfg), "--out", str(run)]) == 0
    model_dir = next((run / "models").iterdir())
    assert not (model_dir / "model.onnx").exists() and (model_dir / "model_int8.tflite").exists()
    capsys.readouterr()
    recipe = "{prune: {criterion: l1, ratio: 0.5, finetune_iters: 2, batch_size: 16}, quantize: {mode: static}}"
    assert main(["compress", str(model_dir), "--recipe", recipe, "--name", "r"]) == 0
    out = capsys.readouterr().out
    assert "target latency" in out and "predicted by raspberry-pi4@" in out and "model_int8.tflite" in out
    report = json.loads((model_dir / "compressed" / "r" / "report.json").read_text())
    lat = report["target"]["latency"]
    assert lat["after_ms"] < lat["before_ms"]  # half the channels at int8 is cheaper on the Pi's model
    assert (model_dir / "compressed" / "r" / "model_int8.tflite").stat().st_size > 0
    assert set(report["target"]["files"]) == {"tflite-int8"}
