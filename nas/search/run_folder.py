"""A run folder's guards: paths that stay inside it, the storage fixed at its creation, and the
leftovers of killed workers cleaned up.

>>> inside(Path("runs/x"), "models/0001/model.onnx").as_posix()
'runs/x/models/0001/model.onnx'
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas.core.errors import UserError
from nas.core.files import host_tag, write_atomic
from nas.search.storage import normalize_url, redact, stored_form
from nas.search.workers import pid_alive

log = logging.getLogger(__name__)

STORAGE_FILE = "storage.url"
STORAGE_ENV = "HWNAS_STORAGE"  # the storage URL (with its password) when --storage is not given
_TMP = re.compile(r"^\..+\.(?P<host>[^.]+)\.(?P<pid>\d+)\.tmp$")  # nas.core.files.write_atomic's temporary files


def inside(root: Path, rel: str | Path) -> Path:
    """``root / rel``, refused in one line when it would leave ``root`` (``..``, absolute paths, links)."""
    path = root / rel
    base = root.resolve()
    if Path(rel).is_absolute() or not (path.resolve() == base or base in path.resolve().parents):
        raise UserError(f"path {str(rel)!r} leaves {root}; allowed: a relative path inside it")
    return path


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


# what a run folder holds before its config.yaml is written (workers starting together)
_RUN_ENTRIES = {"study.db", "study.db-journal", "study.db-wal", "study.db-shm", STORAGE_FILE, "artifacts", "trials",
                "baselines", "models", "config.yaml"}


def check_run_dir(run_dir: Path) -> None:
    """A run folder is new, empty, or written by hwnas: a folder of other files is refused, so
    --out never writes over a user's files."""
    long = next((part for part in run_dir.parts if len(part.encode()) > 255), None)
    if long is not None:
        raise UserError(f"run folder name {long[:40]}... is {len(long.encode())} bytes; allowed: up to 255 per "
                        "folder name")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} is a file; allowed: a folder (new or written by hwnas)")
    if not run_dir.is_dir() or (run_dir / "config.yaml").exists():
        return
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in _RUN_ENTRIES and not p.name.startswith("."))
    if foreign:
        raise UserError(f"{run_dir} is a folder of other files ({', '.join(foreign[:3])}"
                        f"{', ...' if len(foreign) > 3 else ''}), not a hwnas run; allowed: a new or empty folder, "
                        "or a run folder")


def run_storage(run_dir: Path, given: str | None) -> str:
    """The storage URL of a run: fixed when the run was created. A ``--storage`` that names
    another storage is refused in one line (it would start another, empty study beside the
    run's outputs); the same storage given again (with its password) is used as given.
    ``$HWNAS_STORAGE`` stands in for ``--storage``."""
    given = given or os.environ.get(STORAGE_ENV) or None
    saved_file = run_dir / STORAGE_FILE
    exists = (run_dir / "config.yaml").exists()
    saved = saved_file.read_text().strip() if saved_file.exists() else None
    if given is None:
        if exists and not saved and not (run_dir / "study.db").exists():
            raise UserError(f"{run_dir} holds a run (config.yaml) but not its study.db; restore it from a copy, or "
                            "use --out for a new run folder (nothing is started over silently)")
        return saved if saved else default_storage(run_dir)
    url = normalize_url(given)
    if exists:
        pinned = saved if saved else default_storage(run_dir)
        if stored_form(url) != stored_form(normalize_url(pinned)):
            raise UserError(f"{run_dir} was created with storage {redact(pinned)}; --storage {redact(given)} names "
                            f"another; allowed: the run's own storage (or --out for a new run folder)")
    return url


def save_storage(run_dir: Path, url: str) -> None:
    """Remember a non-default storage, without its password."""
    if url != default_storage(run_dir) and not (run_dir / STORAGE_FILE).exists():
        write_atomic(run_dir / STORAGE_FILE, (stored_form(url) + "\n").encode())


def clean_orphans(run_dir: Path, study: optuna.Study, *, artifacts: str = "trials") -> list[str]:
    """Remove the files of failed trials (a killed worker's half-written model) and temporary
    files of dead processes; returns what was removed. Files of complete, pruned and running
    trials are kept, whichever worker wrote them."""
    removed = []
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    folder = run_dir / artifacts
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_dir() and path.name.isdigit() and states.get(int(path.name)) == TrialState.FAIL:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path.relative_to(run_dir)))
    host = host_tag()
    for path in [*run_dir.glob(".*.tmp"), *run_dir.glob("*/.*.tmp"), *run_dir.glob("*/*/.*.tmp")]:
        match = _TMP.match(path.name)
        if match and match["host"] == host and not pid_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(str(path.relative_to(run_dir)))
    if removed:
        log.info("removed %d leftover(s) of failed trials and dead workers in %s", len(removed), run_dir)
    return removed
