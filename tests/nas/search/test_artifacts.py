"""Trial files go through Optuna's artifact store: a run folder without a trial's files (the
trial ran on another machine) still gets its models/ from the store."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna_dashboard
import pytest

from optuna.artifacts import get_all_artifact_meta

from nas.core.config import parse_search_config
from nas.core.errors import UserError
from nas.search.artifacts import open_store, store_path
from nas.search.dashboard_storage import UserStudies
from nas.search.report import write_outputs
from nas.search.study import run_search
from tests.conftest import FakeTrainer, tiny_config


def test_every_trial_uploads_its_files_and_models_come_back_from_the_store(tmp_path: Path, idx_dir: Path) -> None:
    shared = tmp_path / "shared-store"
    cfg = parse_search_config(tiny_config(idx_dir, trials=2, artifact_store=str(shared)))
    run = tmp_path / "run"
    study = run_search(cfg, run, trainer=FakeTrainer())
    for trial in study.trials:
        types = {m.filename: m.mimetype for m in get_all_artifact_meta(trial, storage=study._storage)}
        assert types["model.onnx"] == types["weights.pt"] == "application/octet-stream"  # a download, not a page
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


def test_the_dashboard_lists_the_search_not_the_workers_registry(tmp_path: Path, idx_dir: Path) -> None:
    cfg = parse_search_config(tiny_config(idx_dir, trials=1))
    study = run_search(cfg, tmp_path / "run", trainer=FakeTrainer())
    inner = study._storage
    assert {s.study_name for s in inner.get_all_studies()} == {"tiny", "tiny-workers"}
    shown = UserStudies(inner)
    assert [s.study_name for s in shown.get_all_studies()] == ["tiny"]
    # the dashboard's own API, served from the wrapped storage
    environ: dict[str, object] = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = "/api/studies"
    status: list[str] = []
    body = b"".join(optuna_dashboard.wsgi(shown)(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200") and [s["study_name"] for s in json.loads(body)["study_summaries"]] == ["tiny"]
    workers = inner.get_study_id_from_name("tiny-workers")
    with pytest.raises(UserError, match="registry of worker processes"):
        shown.delete_study(workers)
    assert shown.get_study_name_from_id(workers) == "tiny-workers"  # everything else delegates
