"""Reading weights and checkpoints: tensors, numbers, strings and containers of them, never code.

Run folders are shared between machines and users, and a ``.pt`` file is a pickle: every read
goes through :func:`load_tensors` (``torch.load(weights_only=True)``), and a file that names
anything else, or is not a torch file at all, is one line naming the file.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from nas.core.errors import UserError, plain


def load_tensors(path: Path, what: str, *, map_location: str | torch.device = "cpu") -> Any:
    """The contents of the torch file ``path`` (``what`` it should be, for the message)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: not found; allowed: {what}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = plain(str(exc)).split(". ")[0][:160]
        raise UserError(f"{path}: cannot be read as {what} ({type(exc).__name__}: {reason}); files are read as "
                        "tensors only, never as code") from None


def load_into(model: torch.nn.Module, path: Path, what: str) -> None:
    """Load the state dict in ``path`` into ``model``; a file of another architecture is one line."""
    state = load_tensors(path, what)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: not weights of {model.__class__.__name__} for this architecture "
                        f"({plain(str(exc))[:160]}); allowed: {what}") from None
