"""Workers of one study: identity and seeds, dead workers' trials recovered, duplicates skipped,
exactly the trials requested, storage URLs checked and kept without passwords."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.core.errors import UserError
from nas.search.run_folder import clean_orphans, default_storage, inside, run_storage, save_storage
from nas.search.callbacks import ChanceGuard
from nas.search.slots import AT_CHANCE, KEY, SKIPPED, TrialSkipped, at_chance, check_duplicate, counts, wait_for_slot
from nas.search.storage import normalize_url, redact, stored_form, storage_from_url
from nas.search.workers import BEAT, HOLDER, Holder, recover_stale, register_worker, stale_reason, worker_seed


def _study(tmp_path: Path, name: str = "s") -> optuna.Study:
    return optuna.create_study(study_name=name, storage=storage_from_url(f"journal:{tmp_path / 'j.log'}"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_workers_get_distinct_indices_and_seeds(tmp_path: Path) -> None:
    storage = storage_from_url(f"journal:{tmp_path / 'j.log'}")
    indices = [register_worker(storage, "s") for _ in range(3)]
    assert indices == [0, 1, 2]
    assert worker_seed(5, 0) == 5  # a lone run draws what it always drew
    assert len({worker_seed(5, i) for i in range(50)}) == 50


def test_a_dead_workers_trial_is_failed_and_enqueued_again(tmp_path: Path) -> None:
    study = _study(tmp_path)
    trial = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
    study._storage.set_trial_system_attr(trial._trial_id, HOLDER, {"host": Holder.me().host, "pid": _dead_pid(),
                                                                   "start": None})
    study._storage.set_trial_system_attr(trial._trial_id, BEAT, time.time())
    alive = study.ask()
    study._storage.set_trial_system_attr(alive._trial_id, HOLDER, vars(Holder.me()))
    study._storage.set_trial_system_attr(alive._trial_id, BEAT, time.time())
    assert recover_stale(study) == [trial.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    retry = study.get_trials()[2]
    assert retry.params == study.get_trials()[0].params and retry.system_attrs["failed_trial"] == 0
    assert recover_stale(study) == []  # nothing left to recover; the live worker's trial is kept


def test_a_trial_of_another_host_is_stale_only_after_the_grace_period(tmp_path: Path) -> None:
    study = _study(tmp_path)
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, HOLDER, {"host": "elsewhere", "pid": 1, "start": None})
    study._storage.set_trial_system_attr(trial._trial_id, BEAT, 1000.0)
    frozen = study.get_trials()[0]
    assert stale_reason(frozen, now=1030.0, grace=60) is None
    assert "no heartbeat for 100 s" in (stale_reason(frozen, now=1100.0, grace=60) or "")


def test_duplicates_are_skipped_whichever_worker_drew_them(tmp_path: Path) -> None:
    study = _study(tmp_path)
    first, second = study.ask(), study.ask()
    check_duplicate(first, "arch|none")
    with pytest.raises(TrialSkipped, match="duplicate of trial 0 \\(running\\)"):
        check_duplicate(second, "arch|none")
    study.tell(second, state=TrialState.FAIL)
    study.tell(first, 1.0)
    third = study.ask()
    with pytest.raises(TrialSkipped, match="duplicate of trial 0 \\(finished\\)"):
        check_duplicate(third, "arch|none")
    assert study.get_trials()[2].user_attrs[KEY] == "arch|none" and SKIPPED in study.get_trials()[2].user_attrs
    check_duplicate(study.ask(), "other|none")  # a new candidate runs


def test_a_trial_waits_for_a_slot_and_surplus_trials_are_skipped(tmp_path: Path) -> None:
    study = _study(tmp_path)
    a, b = study.ask(), study.ask()
    wait_for_slot(a, 1)  # first in line: runs at once
    polls: list[float] = []

    def finish_a(seconds: float) -> None:
        polls.append(seconds)
        study.tell(a, 1.0)

    with pytest.raises(TrialSkipped, match="surplus"):
        wait_for_slot(b, 1, sleep=finish_a)  # waits while a runs, then a finished: b is not needed
    study.tell(b, state=TrialState.FAIL)
    assert polls and counts(study) == (1, 0, 1)
    c, d = study.ask(), study.ask()

    def fail_c(seconds: float) -> None:
        study.tell(c, state=TrialState.FAIL)

    wait_for_slot(d, 2, sleep=fail_c)  # c failed: d takes its slot


def test_storage_urls_are_checked_and_kept_without_password(tmp_path: Path) -> None:
    assert normalize_url("postgresql://u:pw@h:5432/db").startswith("postgresql+psycopg://")
    assert stored_form("postgresql+psycopg://u:pw@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert "pw" not in redact("postgresql+psycopg://u:pw@h/db")
    # libpq's ?password= form too: shown as ***, not kept in the run folder
    query = "postgresql+psycopg://u@h/db?password=s3cret&sslmode=require"
    assert redact(query) == "postgresql+psycopg://u@h/db?password=***&sslmode=require"
    assert stored_form(query) == "postgresql+psycopg://u@h/db?sslmode=require"
    for bad, match in (("foo://x", "scheme 'foo' not allowed"), ("not a url", "not a storage URL"),
                       ("sqlite://", "in-memory"), (f"journal:{tmp_path}", "needs a file path")):
        with pytest.raises(UserError, match=match):
            normalize_url(bad)
    with pytest.raises(UserError, match="does not exist"):
        storage_from_url(f"journal:{tmp_path / 'missing' / 'j.log'}")
    with pytest.raises(UserError, match="cannot use storage postgresql\\+psycopg://u:\\*\\*\\*@127.0.0.1:1/db"):
        storage_from_url("postgresql://u:secret@127.0.0.1:1/db")


def test_a_runs_storage_is_fixed_at_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HWNAS_STORAGE", raising=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\n")
    (run / "study.db").touch()  # a run's own storage file (run_storage checks only that it is there)
    assert run_storage(run, None) == default_storage(run)
    with pytest.raises(UserError, match="was created with storage sqlite"):
        run_storage(run, f"journal:{tmp_path / 'other.log'}")
    other = tmp_path / "other"
    other.mkdir()
    url = "postgresql+psycopg://u:secret@h:5432/db"
    save_storage(other, url)
    assert (other / "storage.url").read_text() == "postgresql+psycopg://u@h:5432/db\n"  # no password on disk
    (other / "config.yaml").write_text("name: x\n")
    assert run_storage(other, url) == url  # the same storage with its password
    monkeypatch.setenv("HWNAS_STORAGE", url)
    assert run_storage(other, None) == url
    with pytest.raises(UserError, match="names another"):
        run_storage(other, "postgresql://u@h:5432/elsewhere")


def test_paths_stay_inside_and_orphans_are_cleaned(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="leaves"):
        inside(tmp_path, "../x")
    with pytest.raises(UserError, match="leaves"):
        inside(tmp_path, "/etc/passwd")
    study = _study(tmp_path)
    done, lost = study.ask(), study.ask()
    study.tell(done, 1.0)
    study.tell(lost, state=TrialState.FAIL)
    for n in (0, 1):
        (tmp_path / "trials" / f"{n:04d}").mkdir(parents=True)
    host = Holder.me().host.replace(".", "-")
    dead_tmp = tmp_path / f".trials.csv.{host}.{_dead_pid()}.tmp"
    live_tmp = tmp_path / f".front.csv.{host}.{os.getpid()}.tmp"
    dead_tmp.write_text("half")
    live_tmp.write_text("being written")
    removed = clean_orphans(tmp_path, study)
    assert sorted(removed) == sorted(["trials/0001", dead_tmp.name])
    assert (tmp_path / "trials" / "0000").exists() and live_tmp.exists()


def test_most_trials_at_chance_level_stop_the_search_with_one_line(tmp_path: Path) -> None:
    assert at_chance(0.12, 10) and not at_chance(0.2, 10) and at_chance(0.5, 2)
    study = _study(tmp_path)
    guard = ChanceGuard(minimum=5)
    for n in range(5):
        trial = study.ask()
        if n < 3:
            trial.set_user_attr(AT_CHANCE, True)
        study.tell(trial, 0.1)
        if n < 4:
            guard(study, study.get_trials()[-1])  # too few trials to judge yet
    with pytest.raises(UserError, match="3 of 5 complete trials score at chance level"):
        guard(study, study.get_trials()[-1])
