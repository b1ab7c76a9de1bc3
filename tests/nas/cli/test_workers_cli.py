"""Several ``hwnas search`` processes on one study, one of them killed mid-trial and restarted:
exactly the trials requested, no candidate twice, nothing left RUNNING; on PostgreSQL, a journal
file and SQLite, and through ``--workers``."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from nas.search.slots import KEY, SKIPPED
from nas.search.storage import storage_from_url
from nas.search.workers import HOLDER
from tests import pg_server
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _config(tmp_path: Path, idx_dir: Path) -> Path:
    raw = tiny_config(idx_dir)
    raw["train"]["epochs"] = 2
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _worker(config: Path, run: Path, storage: str, trials: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "nas.cli", "search", str(config), "--out", str(run), "--storage",
                             storage, "--trials", str(trials)], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env=env, cwd=ROOT)


def _kill_mid_trial(storage: str, victim: subprocess.Popen[bytes], timeout: float = 240) -> None:
    """SIGKILL ``victim`` once it holds a running trial."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name="tiny", storage=storage_from_url(storage, heartbeat=False))
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if any(t.system_attrs.get(HOLDER, {}).get("pid") == victim.pid and KEY in t.user_attrs for t in running):
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                return
        except KeyError:
            pass  # the study is not created yet
        time.sleep(0.2)
    raise AssertionError("the victim never ran a trial")


def _check(storage: str, trials: int) -> optuna.Study:
    study = optuna.load_study(study_name="tiny", storage=storage_from_url(storage, heartbeat=False))
    states = [t.state for t in study.trials]
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == trials, [(t.number, t.state.name, t.user_attrs.get(SKIPPED), t.user_attrs.get("error"),
                                      t.user_attrs.get(KEY)) for t in study.trials]
    keys = [t.user_attrs[KEY] for t in finished]
    assert len(set(keys)) == len(keys), "a candidate was evaluated twice"
    assert TrialState.RUNNING not in states
    assert all(SKIPPED in t.user_attrs or "error" in t.user_attrs or t.system_attrs.get(HOLDER) for t in study.trials
               if t.state == TrialState.FAIL)
    return study


@pytest.mark.parametrize("backend, workers, trials", [("postgres", 3, 12), ("journal", 3, 12), ("sqlite", 2, 12)])
def test_workers_with_one_killed_finish_exactly(backend: str, workers: int, trials: int, tmp_path: Path,
                                               idx_dir: Path, request: pytest.FixtureRequest) -> None:
    run = tmp_path / "run"
    storage = {"postgres": lambda: request.getfixturevalue("postgres_url"),
               "journal": lambda: f"journal:{tmp_path / 'study.log'}",
               "sqlite": lambda: f"sqlite:///{tmp_path / 'study.db'}"}[backend]()
    config, log = _config(tmp_path, idx_dir), tmp_path / "workers.log"
    procs = [_worker(config, run, storage, trials, log) for _ in range(workers)]
    _kill_mid_trial(storage, procs[0])
    procs[0] = _worker(config, run, storage, trials, log)  # restarted: recovers the killed trial at once
    codes = [p.wait(timeout=900) for p in procs]
    assert codes == [0] * workers, log.read_text()[-3000:]
    study = _check(storage, trials)
    lost = [t for t in study.trials if t.state == TrialState.FAIL and "WorkerLost" in str(t.user_attrs.get("error"))]
    assert len(lost) == 1
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == lost[0].number]
    assert retried and retried[0].params == lost[0].params  # the killed trial's candidate ran again
    table = pd.read_csv(run / "trials.csv")
    assert len(table) == len(study.trials) and (run / "front.csv").exists()
    assert "secret" not in (run / "storage.url").read_text()


def test_the_workers_option_starts_local_workers(tmp_path: Path, idx_dir: Path) -> None:
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "nas.cli", "search", str(_config(tmp_path, idx_dir)), "--out", str(run),
                          "--trials", "6", "--workers", "2"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "[w0]" in out.stdout and "[w1]" in out.stdout and "worker 1" in out.stdout
    _check(f"sqlite:///{(run / 'study.db').resolve()}", 6)
    assert (run / "front.png").exists()


def test_workers_ride_out_a_postgresql_outage(tmp_path: Path, idx_dir: Path) -> None:
    """The server stops as in a crash while 2 workers search, and starts again 10 s later: both
    workers wait (one notice each way), then finish the exact trials, nothing left RUNNING."""
    if pg_server.server_bin() is None:
        if os.environ.get("HWNAS_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL server programs not found (apt-get install postgresql)")
        pytest.skip("PostgreSQL server programs not installed; .ci/run installs them")
    pytest.importorskip("psycopg")
    with pg_server.controllable_server() as server:
        storage = pg_server.create_database(server.url, "outage")
        run, config, log = tmp_path / "run", _config(tmp_path, idx_dir), tmp_path / "workers.log"
        procs = [_worker(config, run, storage, 6, log) for _ in range(2)]
        _wait_for_a_running_trial(storage)
        server.stop()
        time.sleep(10)
        server.start()
        codes = [p.wait(timeout=900) for p in procs]
        text = log.read_text()
        assert codes == [0, 0], text[-3000:]
        assert "unreachable" in text and "reachable again" in text and "Traceback" not in text
        _check(storage, 6)


def _wait_for_a_running_trial(storage: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name="tiny", storage=storage_from_url(storage, heartbeat=False))
            if any(KEY in t.user_attrs for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))):
                return
        except KeyError:
            pass
        time.sleep(0.2)
    raise AssertionError("no trial started")
