"""The supernet file (``supernet.pt``): weights plus what they were trained on, readable with
``torch.load(weights_only=True)`` (no pickled code), written atomically.

A search on a supernet checks that the file covers its space and data before any trial
(:func:`check_matches`); a file of another dataset, class list or space is refused in one line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.core.config import SpaceConfig
from nas.core.errors import UserError
from nas.core.files import write_atomic
from nas.core.schema import from_mapping
from nas.data.splits import Preprocess, Splits
from nas.supernet.net import Supernet
from nas.supernet.space import SupernetSpace

FORMAT = "hwnas-supernet/1"
_LISTS = ("resolutions", "widths", "kernels", "exp_ratios", "block_types")


@dataclass(frozen=True)
class SupernetFile:
    """A loaded supernet and where it came from."""

    net: Supernet
    path: Path
    sha256: str
    dataset: str
    classes: tuple[str, ...]
    preprocess: Preprocess
    meta: dict[str, Any]

    def describe(self) -> str:
        return f"supernet {self.path} (sha256 {self.sha256[:16]}, {self.meta.get('epochs', '?')} epochs)"


def save_supernet(path: Path, net: Supernet, splits: Splits, meta: dict[str, Any]) -> str:
    """Write the supernet file; returns its sha256."""
    state = {"format": FORMAT, "space": json.dumps(dataclasses.asdict(net.space.cfg)), "dataset": splits.name,
             # plain str: an image folder's class names may be numpy strings, which weights_only refuses
             "classes": [str(c) for c in splits.classes], "preprocess": json.dumps(dataclasses.asdict(splits.preprocess)),
             "meta": json.dumps(meta), "state_dict": {k: v.detach().cpu().contiguous()
                                                      for k, v in net.state_dict().items()}}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def load_supernet(path: Path) -> SupernetFile:
    """Read a supernet file; a missing or foreign file is a one-line UserError."""
    if not path.is_file():
        raise UserError(f"search.supernet {str(path)!r} does not exist; allowed: a supernet.pt written by "
                        "hwnas supernet train CONFIG")
    data = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if state.get("format") != FORMAT:
            raise ValueError(f"format {state.get('format')!r}")
        cfg = from_mapping(SpaceConfig, json.loads(state["space"]), "supernet space")
        p = json.loads(state["preprocess"])
        pre = Preprocess(int(p["source_size"]), int(p["channels"]), tuple(p["mean"]), tuple(p["std"]),
                         str(p["channel_order"]))
        space = SupernetSpace(cfg, in_chs=pre.channels, num_classes=len(state["classes"]))
        net = Supernet(space)
        net.load_state_dict(state["state_dict"])
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: not a readable supernet file ({type(exc).__name__}: {str(exc)[:120]}); allowed: "
                        f"a supernet.pt written by hwnas supernet train ({FORMAT})") from None
    return SupernetFile(net.eval(), path, hashlib.sha256(data).hexdigest(), state["dataset"],
                        tuple(state["classes"]), pre, json.loads(state["meta"]))


def check_matches(supernet: SupernetFile, space: SpaceConfig, splits: Splits) -> None:
    """Refuse a supernet trained on other data or on a space that does not hold ``space``."""
    if supernet.dataset != splits.name or supernet.classes != tuple(splits.classes):
        raise UserError(f"{supernet.path} was trained on {supernet.dataset} ({len(supernet.classes)} classes), this "
                        f"search reads {splits.name} ({len(splits.classes)} classes); allowed: a supernet of the "
                        "same data")
    if supernet.preprocess != splits.preprocess:
        raise UserError(f"{supernet.path} was trained with other preprocessing (input size, channels or the "
                        "training split's mean and std: another data.val_fraction or seed?); allowed: a supernet "
                        "trained on this config's data")
    mine, theirs = dataclasses.asdict(space), dataclasses.asdict(supernet.net.space.cfg)
    for key, value in mine.items():
        covered = set(value) <= set(theirs[key]) if key in _LISTS else value == theirs[key]
        if key == "stages":
            covered = len(value) == len(theirs[key]) and all(
                a["chs"] == b["chs"] and a["stride"] == b["stride"] and set(a["depths"]) <= set(b["depths"])
                and set(a["block_types"] or mine["block_types"]) <= set(b["block_types"] or theirs["block_types"])
                for a, b in zip(value, theirs[key]))
        if not covered:
            raise UserError(f"space.{key} {value!r} is not covered by {supernet.path} (trained on {theirs[key]!r}); "
                            "allowed: a space within the supernet's (or train a supernet on this config)")
