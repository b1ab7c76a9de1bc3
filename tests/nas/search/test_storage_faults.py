"""Faults of the storage and the run folder: corruption is refused or repaired in one line, never
reset silently; --out never writes over a user's folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from nas.cli import main
from nas.core.config import parse_search_config
from nas.search.study import run_search
from tests.conftest import FakeTrainer, tiny_config


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path) -> tuple[Path, Path]:
    """A finished 2-trial run on SQLite and one on a journal file, and their config."""
    root = tmp_path_factory.mktemp("faults")
    raw = tiny_config(idx_dir, trials=2)
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw))
    run_search(parse_search_config(raw), root / "sqlite", trainer=FakeTrainer())
    run_search(parse_search_config(raw), root / "journal", trainer=FakeTrainer(),
               storage=f"journal:{root / 'journal.log'}")
    return root, root / "tiny.yaml"


def _one_line(capsys: pytest.CaptureFixture[str], *expected: str) -> None:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("hwnas: error: "), err
    for text in expected:
        assert text in err[0], err[0]


def _copy(made: tuple[Path, Path], tmp_path: Path, name: str) -> Path:
    shutil.copytree(made[0] / name, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("content, expected", [(b"", "is empty (0 bytes)"),
                                               (bytes(range(256)) * 8, "is not an SQLite database")])
def test_an_empty_or_garbage_study_db_is_refused_not_reset(made: tuple[Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str], content: bytes,
                                                           expected: str) -> None:
    run = _copy(made, tmp_path, "sqlite")
    (run / "study.db").write_bytes(content)
    trials_csv = (run / "trials.csv").read_bytes()
    for argv in (["front", str(run)], ["search", str(made[1]), "--out", str(run)]):
        assert main(argv) == 2
        _one_line(capsys, expected)
    assert (run / "study.db").read_bytes() == content and (run / "trials.csv").read_bytes() == trials_csv


def test_a_run_without_its_study_db_is_refused(made: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(made, tmp_path, "sqlite")
    (run / "study.db").unlink()
    assert main(["search", str(made[1]), "--out", str(run)]) == 2
    _one_line(capsys, "holds a run (config.yaml) but not its study.db")
    assert not (run / "study.db").exists()


def test_out_into_a_folder_of_other_files_is_refused(made: tuple[Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    (mine / "trials" / "0000").mkdir(parents=True)
    (mine / "trials.csv").write_text("my,own,data\n")
    (mine / "notes.txt").write_text("mine\n")
    assert main(["search", str(made[1]), "--out", str(mine)]) == 2
    _one_line(capsys, "is a folder of other files (notes.txt, trials.csv)")
    assert (mine / "trials.csv").read_text() == "my,own,data\n" and sorted(p.name for p in mine.iterdir()) == [
        "notes.txt", "trials", "trials.csv"]


def test_a_truncated_last_journal_record_is_dropped_and_the_run_goes_on(made: tuple[Path, Path], tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "journal.log"
    shutil.copy(made[0] / "journal.log", log)
    whole = log.read_bytes()
    log.write_bytes(whole + b'{"op_code":5,"worker_id":"x","trial_id":0,"sta')  # a writer killed mid-record
    run = tmp_path / "run"
    raw = yaml.safe_load(made[1].read_text())
    # a new folder joining the copied study: its trials' files come from a shared artifact store
    search = raw["search"] | {"trials": 3, "artifact_store": str(made[0] / "journal" / "artifacts")}
    study = run_search(parse_search_config(raw | {"search": search}), run, trainer=FakeTrainer(),
                       storage=f"journal:{log}")
    assert "dropped its last record, cut after 46 bytes" in caplog.text
    assert len([t for t in study.trials if t.state.is_finished()]) >= 3
    assert log.read_bytes().startswith(whole) and log.read_bytes().endswith(b"\n")


def test_a_garbage_journal_line_is_refused_naming_it(made: tuple[Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "journal.log"
    lines = (made[0] / "journal.log").read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3]) + b"garbage\n" + b"".join(lines[3:]))
    assert main(["search", str(made[1]), "--out", str(tmp_path / "run"), "--storage", f"journal:{log}"]) == 2
    _one_line(capsys, f"journal {log}: line 4 is not an Optuna journal record")


def test_a_new_folder_cannot_join_another_folders_study_without_a_shared_store(made: tuple[Path, Path],
                                                                              tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "journal.log"
    shutil.copy(made[0] / "journal.log", log)
    new = tmp_path / "new"
    assert main(["search", str(made[1]), "--out", str(new), "--storage", f"journal:{log}"]) == 2
    _one_line(capsys, "already holds study 'tiny' with 2 finished trials of another run folder",
              "search.artifact_store")
    assert not new.exists()
