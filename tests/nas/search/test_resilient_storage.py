"""Storage operations retried through an outage, a longer one given up in one line."""
from __future__ import annotations

import errno
from typing import Any

import optuna
import pytest
import sqlalchemy.exc

from nas.core.errors import UserError
from nas.search.resilient_storage import ResilientStorage, StorageUnavailable, is_outage


class _Flaky(optuna.storages.InMemoryStorage):
    """An in-memory storage whose reads fail ``failures`` times, as a database that restarts."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures, self.error = failures, error

    def get_all_trials(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return super().get_all_trials(*args, **kwargs)


DOWN = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_an_outage_is_ridden_out_with_one_notice_each_way(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []
    storage = ResilientStorage(_Flaky(5, DOWN), "postgresql://h/db", sleep=waits.append)
    study = optuna.create_study(storage=storage, directions=["maximize"])
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 2 and waits == [0.5, 1.0, 2.0, 4.0, 8.0]  # backoff, capped at 10 s
    notices = [r.getMessage() for r in caplog.records if r.name == "nas.search.resilient_storage"]
    assert len(notices) == 2 and "unreachable (Exception: connection refused)" in notices[0]
    assert "reachable again" in notices[1]


def test_a_longer_outage_is_one_line_and_remembered() -> None:
    storage = ResilientStorage(_Flaky(10**6, DOWN), "postgresql://h/db", outage_s=0.0, sleep=lambda s: None)
    with pytest.raises(StorageUnavailable, match=r"storage postgresql://h/db unreachable for 0 s \(Exception: connection refused\)"):
        storage.get_all_trials(0)
    assert storage.gave_up is not None and "\n" not in str(storage.gave_up)


def test_a_full_disk_is_one_line_at_once_and_bugs_pass_through() -> None:
    full = ResilientStorage(_Flaky(1, OSError(errno.ENOSPC, "No space left on device")), "journal:/x",
                            sleep=lambda s: pytest.fail("a full disk is not waited for"))
    with pytest.raises(UserError, match="the disk is full"):
        full.get_all_trials(0)
    bug = ResilientStorage(_Flaky(1, KeyError("bug")), "x", sleep=lambda s: pytest.fail("a bug is not waited for"))
    with pytest.raises(KeyError):
        bug.get_all_trials(0)
    assert is_outage(OSError(errno.EIO, "I/O error")) and not is_outage(FileNotFoundError())
