"""Workers of one study: who they are, whether they are alive, and what happens to the trials of
one that died.

Each worker process takes a unique index from the study's ``<name>-workers`` companion study (a
trial number: Optuna assigns those atomically in every storage), seeds its sampler from the study
seed and that index, and marks each trial it runs with its host, process id and a heartbeat. A
RUNNING trial whose process is gone (same host: at once; another host: no heartbeat for
``GRACE_S``) is failed and enqueued again by :func:`recover_stale` when any worker starts.

>>> worker_seed(7, 0), worker_seed(7, 1) != worker_seed(7, 2)
(7, True)
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.search._optuna import fail_trial, set_system_attr
from nas.search.record import failure_attrs, result_of
from nas.search.storage import GRACE_S, HEARTBEAT_S

log = logging.getLogger(__name__)

HOLDER, BEAT = "hwnas:holder", "hwnas:beat"  # system attributes of a running trial
MAX_RETRY = 2


def enqueue_again(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
    """Queue a lost trial's candidate again (as Optuna's RetryHeartbeatStaleTrialCallback does,
    at most ``MAX_RETRY`` times per candidate), without the lost trial's error."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return False
    system_attrs = {"failed_trial": history[0], "retry_history": history}
    study.add_trial(optuna.create_trial(state=TrialState.WAITING, params=trial.params,
                                        distributions=trial.distributions, system_attrs=system_attrs))
    return True


def workers_study_name(name: str) -> str:
    return f"{name}-workers"


def worker_seed(seed: int, index: int) -> int:
    """The sampler seed of worker ``index``: the study seed for the first worker (a lone run
    draws what it always drew), a distinct one for each other worker."""
    return seed if index == 0 else (seed * 1_000_003 + index * 7_919) % (2**31 - 1)


def _process_start(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (Linux), so a reused pid is told apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int) -> bool:
    """Whether a process of this host has this pid (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """The process that runs a trial."""

    host: str
    pid: int
    start: str | None

    @classmethod
    def me(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()))

    def dead_reason(self) -> str | None:
        """Why this holder is known to be dead, judged from this host; None if alive or unknowable."""
        if self.host != socket.gethostname():
            return None
        if not pid_alive(self.pid):
            return f"worker {self.host}:{self.pid} is gone"
        if self.start is not None and _process_start(self.pid) not in (None, self.start):
            return f"worker {self.host}:{self.pid} is gone (its pid now belongs to another process)"
        return None


def register_worker(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    """A unique index for this worker process in the study (0 for the first ever)."""
    study = optuna.create_study(study_name=workers_study_name(study_name), storage=storage, load_if_exists=True)
    trial = study.ask()
    for key, value in asdict(Holder.me()).items():
        trial.set_user_attr(key, value)
    return trial.number


def claim(trial: optuna.Trial) -> None:
    """Mark ``trial`` as run by this process."""
    set_system_attr(trial, HOLDER, asdict(Holder.me()))
    set_system_attr(trial, BEAT, time.time())


@contextmanager
def heartbeat(trial: optuna.Trial, *, interval: float = HEARTBEAT_S) -> Iterator[None]:
    """Refresh the trial's heartbeat every ``interval`` seconds while the block runs (every
    storage: Optuna's own heartbeat covers RDB storages only)."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval):
            try:
                set_system_attr(trial, BEAT, time.time())
            except Exception as exc:  # a missed beat is retried; the trial itself goes on
                log.warning("heartbeat of trial %d failed: %s", trial.number, exc)

    thread = threading.Thread(target=beat, name=f"hwnas-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def stale_reason(trial: optuna.trial.FrozenTrial, *, now: float, grace: float = GRACE_S) -> str | None:
    """Why a RUNNING trial is abandoned, or None while its worker may be alive."""
    holder: Any = trial.system_attrs.get(HOLDER)
    if isinstance(holder, dict):
        reason = Holder(str(holder["host"]), int(holder["pid"]), holder.get("start")).dead_reason()
        if reason is not None:
            return reason
    last = trial.system_attrs.get(BEAT)
    if last is None and trial.datetime_start is not None:
        last = trial.datetime_start.timestamp()
    if last is not None and now - float(last) > grace:
        return f"no heartbeat for {now - float(last):.0f} s (grace {grace:.0f} s)"
    return None


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Enqueue again the candidates of trials a Ctrl-C or SIGTERM stopped (recorded as failed
    with a KeyboardInterrupt), once each: a resumed search runs them first (Optuna's queue comes
    before the sampler), and they count once, since failed trials do not count."""
    trials = study.get_trials(deepcopy=False)
    done = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    queued = []
    for trial in trials:
        if trial.state != TrialState.FAIL or trial.number in done:
            continue
        record = result_of(trial)
        if record is None or not (record.error or "").startswith("KeyboardInterrupt"):
            continue
        if enqueue_again(study, trial):
            queued.append(trial.number)
    if queued:
        log.info("interrupted trials %s enqueued to run first", queued)
    return queued


def recover_stale(study: optuna.Study, *, grace: float = GRACE_S) -> list[int]:
    """Fail the RUNNING trials of dead workers and enqueue each again (:func:`enqueue_again`);
    returns their numbers."""
    recovered = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, now=now, grace=grace)
        if reason is None:
            continue
        failed = fail_trial(study, trial, failure_attrs(f"WorkerLost: {reason}"))
        if failed is None:
            continue  # another worker recovered it first
        again = enqueue_again(study, failed)
        log.warning("trial %d failed: %s; %s", trial.number, reason,
                    "enqueued again" if again else f"not enqueued again (lost {MAX_RETRY + 1} times)")
        recovered.append(trial.number)
    return recovered
