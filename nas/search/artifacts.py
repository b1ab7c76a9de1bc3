"""Trial files in Optuna's artifact store: every worker uploads what its trials exported, so
the run's models/, front.csv and the dashboard work whichever worker (on whichever machine)
trained a trial.

>>> store_path(Path("runs/x"), None).as_posix()
'runs/x/artifacts'
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta, upload_artifact

from nas.search._optuna import storage_of

log = logging.getLogger(__name__)


def store_path(run_dir: Path, configured: str | None) -> Path:
    """``search.artifact_store``: null means ``<run folder>/artifacts``; relative paths are the run folder's."""
    if configured is None:
        return run_dir / "artifacts"
    path = Path(configured).expanduser()
    return path if path.is_absolute() else run_dir / path


def open_store(run_dir: Path, configured: str | None) -> FileSystemArtifactStore:
    path = store_path(run_dir, configured)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


# what a browser should do with a trial's files (Python's table calls .pt a SNES page table)
_MIMETYPES = {".onnx": "application/octet-stream", ".tflite": "application/octet-stream",
              ".pt": "application/octet-stream", ".json": "application/json", ".md": "text/markdown",
              ".txt": "text/plain", ".png": "image/png", ".csv": "text/csv"}


def mimetype(path: Path) -> str:
    """The content type a trial file is served with (the dashboard's downloads)."""
    return _MIMETYPES.get(path.suffix.lower(), "application/octet-stream")


def upload_trial_files(trial: optuna.Trial, folder: Path, store: FileSystemArtifactStore) -> list[str]:
    """Upload every file of a trial's folder (model files, weights); returns their names."""
    names = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        upload_artifact(study_or_trial=trial, file_path=str(path), artifact_store=store, mimetype=mimetype(path))
        names.append(path.name)
    return names


def trial_file(study: optuna.Study, trial: optuna.trial.FrozenTrial, local: Path,
               store: FileSystemArtifactStore | None) -> bytes:
    """A trial's file: from this machine's run folder when there, else from the artifact store
    (the trial ran on another machine's worker)."""
    if local.exists() or store is None:
        return local.read_bytes()
    meta = next((m for m in get_all_artifact_meta(trial, storage=storage_of(study)) if m.filename == local.name), None)
    if meta is None:
        raise FileNotFoundError(f"{local} is neither in this run folder nor in the artifact store")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / local.name
        download_artifact(artifact_store=store, artifact_id=meta.artifact_id, file_path=str(target))
        log.info("trial %d: %s fetched from the artifact store", trial.number, local.name)
        return target.read_bytes()
