"""Every case of tests/bad_inputs.py: exit code 2, one line on stderr, no file changed."""
from __future__ import annotations

from pathlib import Path

import pytest

from nas.cli import main

from tests import bad_inputs  # the table the reliability benchmark runs too

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("bad-inputs")
    bad_inputs.prepare_workspace(ws, main)
    return ws


def test_there_are_at_least_70_cases() -> None:
    assert len(bad_inputs.CASES) >= 70
    assert len({c.name for c in bad_inputs.CASES}) == len(bad_inputs.CASES)


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=lambda c: c.name)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case: bad_inputs.Case, workspace: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace)
    argv = case.setup(workspace)
    before = bad_inputs.snapshot(workspace)
    capsys.readouterr()
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("hwnas: error: "), err
    assert bad_inputs.changed(before, bad_inputs.snapshot(workspace)) == []
