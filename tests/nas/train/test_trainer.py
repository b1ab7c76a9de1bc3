from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas.core.config import TrainConfig, parse_search_config
from nas.core.errors import UserError
from nas.deploy.export import DeployInfo, to_onnx
from nas.hardware.profiles import load_profile
from nas.search.record import result_of
from nas.search.study import load_splits, run_search
from nas.space.arch import parse
from nas.space.builder import build
from nas.train.teacher import teacher_logits
from nas.train.trainer import train
from tests.conftest import tiny_config

TEACHER = "in_c1_r16-stem_k3_s1_c8-ir_r1_k3_s2_e3_c16-head_c32-fc_c10"


def _teacher(tmp_path: Path, idx_dir: Path) -> tuple[Path, object]:
    cfg = parse_search_config(tiny_config(idx_dir))
    splits = load_splits(cfg, cache_dir=tmp_path / "cache")
    spec = parse(TEACHER)
    model = build(spec)
    train(model, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=16,
          cfg=TrainConfig(epochs=2, batch_size=50, lr=0.02), seed=0)
    path = tmp_path / "teacher.onnx"
    path.write_bytes(to_onnx(model, DeployInfo.for_arch(spec, splits.preprocess, splits.classes)))
    return path, splits


def test_teacher_logits_drive_candidate_training(tmp_path: Path, idx_dir: Path) -> None:
    path, splits = _teacher(tmp_path, idx_dir)
    from nas.core.schema import from_mapping

    cfg = from_mapping(TrainConfig, {"epochs": 1, "batch_size": 50, "lr": 0.02,
                                     "distill": {"model": str(path), "alpha": 1.0, "temperature": 2.0}}, "train")
    logits = teacher_logits(cfg.distill, splits)  # type: ignore[arg-type]
    assert logits.shape == (len(splits.y_train), 10)
    # alpha 1: the labels play no part, so scrambled labels train the same network
    runs = []
    for labels in (splits.y_train, np.roll(splits.y_train, 1)):
        student = build(parse("in_c1_r12-stem_k3_s1_c8-ir_r1_k3_s2_e3_c16-head_c32-fc_c10"))
        runs.append(train(student, splits.x_train, labels, preprocess=splits.preprocess, resolution=12, cfg=cfg,
                          seed=0, teacher_logits=logits))
    assert runs[0] == pytest.approx(runs[1])
    plain = build(parse("in_c1_r12-stem_k3_s1_c8-ir_r1_k3_s2_e3_c16-head_c32-fc_c10"))
    no_teacher = train(plain, splits.x_train, splits.y_train, preprocess=splits.preprocess, resolution=12, cfg=cfg,
                       seed=0)
    assert no_teacher != pytest.approx(runs[0])


def test_search_with_a_teacher_records_it_and_rejects_bad_teachers(tmp_path: Path, idx_dir: Path) -> None:
    path, splits = _teacher(tmp_path, idx_dir)
    data = tiny_config(idx_dir, trials=2)
    data["train"]["distill"] = {"model": str(path)}
    study = run_search(parse_search_config(data), tmp_path / "run", profile=load_profile("cpu"), splits=splits)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all((r := result_of(t)) is not None and r.teacher == str(path) for t in done)
    data["train"]["distill"] = {"model": str(tmp_path / "missing.onnx")}
    with pytest.raises(UserError, match="train.distill.model: .*missing.onnx not found"):
        run_search(parse_search_config(data), tmp_path / "run2", profile=load_profile("cpu"), splits=splits)
    with pytest.raises(UserError, match="train.distill.model: 'teacher.pt' not allowed; allowed: a path to an .onnx"):
        data["train"]["distill"] = {"model": "teacher.pt"}
        parse_search_config(data)
