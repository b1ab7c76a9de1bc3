"""A search on a trained supernet (``search.strategy: supernet``): candidates inherit their
weights instead of being trained, and everything else (compression, export, measurement on the
file, records, outputs) is the per-trial search's.

>>> supernet_path(load_search_config("supernet"))  # doctest: +SKIP
PosixPath('runs/supernet-supernet/supernet.pt')
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from nas.core.config import SearchConfig
from nas.data.splits import Splits
from nas.search.evaluate import EvalContext
from nas.supernet.inherit import Inheritor
from nas.supernet.space import check_elastic
from nas.supernet.store import SupernetFile, check_matches, load_supernet


def default_supernet_dir(name: str) -> Path:
    """Where ``hwnas supernet train`` writes a config's supernet by default."""
    return Path("runs") / f"{name}-supernet"


def supernet_path(cfg: SearchConfig) -> Path:
    """``search.supernet``, else the default location of this config's supernet."""
    return Path(cfg.search.supernet) if cfg.search.supernet else default_supernet_dir(cfg.name) / "supernet.pt"


def open_supernet(cfg: SearchConfig, splits: Splits) -> SupernetFile:
    """The search's supernet, checked against its space and data (one-line errors otherwise)."""
    check_elastic(cfg.space)
    supernet = load_supernet(supernet_path(cfg))
    check_matches(supernet, cfg.space, splits)
    return supernet


def inheriting(context: EvalContext, supernet: SupernetFile) -> EvalContext:
    """``context`` with training replaced by inheriting ``supernet``'s weights."""
    bn_images = context.cfg.supernet.bn_images
    return dataclasses.replace(context, trainer=Inheritor(supernet.net, bn_images),
                               weights_from=f"{supernet.describe()}; BatchNorm re-estimated on {bn_images} "
                                            "training images")
