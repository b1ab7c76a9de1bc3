"""Weights and checkpoints are read as tensors only: a planted pickle is one line, never run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas.core.errors import UserError
from nas.train.weights import load_into, load_tensors
from tests.conftest import Payload


def test_a_planted_pickle_is_refused_in_one_line_and_never_runs(tmp_path: Path) -> None:
    marker, planted = tmp_path / "ran", tmp_path / "weights.pt"
    torch.save({"w": Payload(marker)}, planted)
    with pytest.raises(UserError) as info:
        load_into(torch.nn.Linear(2, 2), planted, "a weights.pt")
    message = str(info.value)
    assert message.startswith(f"{planted}: cannot be read as a weights.pt (UnpicklingError") and "\n" not in message
    assert "never as code" in message and not marker.exists()


def test_garbage_missing_and_foreign_weights_are_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    for path, expected in ((garbage, "cannot be read as weights"), (tmp_path / "absent.pt", "not found")):
        with pytest.raises(UserError, match=expected):
            load_tensors(path, "weights")
    foreign = tmp_path / "foreign.pt"
    torch.save(torch.nn.Linear(3, 3).state_dict(), foreign)
    with pytest.raises(UserError, match="not weights of Linear for this architecture"):
        load_into(torch.nn.Linear(2, 2), foreign, "weights")
    good = tmp_path / "good.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), good)
    load_into(torch.nn.Linear(2, 2), good, "weights")
