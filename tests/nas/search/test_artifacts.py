"""Trial files go through Optuna's artifact store: a run folder without a trial's files (the
trial ran on another machine) still gets its models/ from the store."""
from __future__ import annotations

import shutil
from pathlib import Path

from optuna.artifacts import get_all_artifact_meta

from nas.core.config import parse_search_config
from nas.search.artifacts import open_store, store_path
from nas.search.report import write_outputs
from nas.search.study import run_search
from tests.conftest import FakeTrainer, tiny_config


def test_every_trial_uploads_its_files_and_models_come_back_from_the_store(tmp_path: Path, idx_dir: Path) -> None:
    shared = tmp_path / "shared-store"
    cfg = parse_search_config(tiny_config(idx_dir, trials=2, artifact_store=str(shared)))
    run = tmp_path / "run"
    study = run_search(cfg, run, trainer=FakeTrainer())
    for trial in study.trials:
        names = {m.filename for m in get_all_artifact_meta(trial, storage=study._storage)}
        assert {"model.onnx", "weights.pt"} <= names
    assert store_path(run, str(shared)) == shared and any(shared.iterdir())
    local = {p.parent.name: p.read_bytes() for p in (run / "trials").glob("*/model.onnx")}
    shutil.rmtree(run / "trials")  # as on a machine whose worker did not train these trials
    shutil.rmtree(run / "models")
    front = write_outputs(run, budgets={}, search=study, store=open_store(run, str(shared)))
    assert len(front) >= 1
    for row in front.itertuples():
        restored = run / "models" / f"{row.trial:04d}" / "model.onnx"
        assert restored.read_bytes() == local[restored.parent.name]  # the very file the trial exported
    assert store_path(run, None) == run / "artifacts"
