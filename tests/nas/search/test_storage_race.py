"""Several processes opening one new SQLite study file at once (workers, the dashboard, a script
reading the study) all get the storage: SQLite reports their schema race as "table ... already
exists", which a raw RDBStorage raises (this failed CI once, a test polling the file while the
launcher created it)."""
from __future__ import annotations

import multiprocessing as mp
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import optuna

from nas.search.storage import storage_from_url


def _open(url: str, barrier: Barrier, results: Queue) -> None:  # type: ignore[type-arg]
    barrier.wait()
    try:
        storage = storage_from_url(url, heartbeat=False)
        results.put(str(len(optuna.get_all_study_names(storage))))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which asserts on it
        results.put(f"{type(exc).__name__}: {exc}")


def test_six_processes_creating_one_sqlite_schema_together_all_get_the_storage(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    for rep in range(3):
        url = f"sqlite:///{tmp_path / f'study{rep}.db'}"
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(url, barrier, results)) for _ in range(6)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        assert outcomes == ["0"] * 6, outcomes
