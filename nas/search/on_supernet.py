"""A search on a trained supernet (``search.strategy: supernet``): candidates inherit their
weights instead of being trained, and everything else (compression, export, measurement on the
file, records, outputs) is the per-trial search's.

>>> supernet_path(load_search_config("supernet"))  # doctest: +SKIP
PosixPath('runs/supernet-supernet/supernet.pt')
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from nas.core.config import SearchConfig, SpaceConfig
from nas.data.splits import Splits
from nas.search.evaluate import EvalContext
from nas.supernet.derive import DerivedSpace, derive_space
from nas.supernet.inherit import Inheritor
from nas.supernet.space import check_elastic
from nas.supernet.store import SupernetFile, check_matches, load_supernet


def default_supernet_dir(name: str) -> Path:
    """Where ``hwnas supernet train`` writes a config's supernet by default."""
    return Path("runs") / f"{name}-supernet"


def supernet_path(cfg: SearchConfig) -> Path:
    """``search.supernet``, else the default location of this config's supernet."""
    return Path(cfg.search.supernet) if cfg.search.supernet else default_supernet_dir(cfg.name) / "supernet.pt"


def supernet_space(cfg: SearchConfig, *, in_chs: int, num_classes: int) -> DerivedSpace:
    """The space a supernet of ``cfg`` trains and a supernet search of ``cfg`` searches:
    ``space`` narrowed to the budgets (``supernet.space: derive``, :mod:`nas.supernet.derive`)
    or as written (``given``); the notes say what derivation leaves out, in both cases (with
    ``given``: why the space as written is too wide)."""
    derived = derive_space(cfg.space, cfg.search.budgets, in_chs=in_chs, num_classes=num_classes)
    return DerivedSpace(cfg.space, derived.notes) if cfg.supernet.space == "given" else derived


def searched_space(cfg: SearchConfig, splits: Splits) -> SpaceConfig:
    return supernet_space(cfg, in_chs=splits.preprocess.channels, num_classes=len(splits.classes)).space


def open_supernet(cfg: SearchConfig, splits: Splits) -> SupernetFile:
    """The search's supernet, checked against its space and data (one-line errors otherwise)."""
    space = searched_space(cfg, splits)
    check_elastic(space)
    supernet = load_supernet(supernet_path(cfg))
    check_matches(supernet, space, splits)
    return supernet


def inheriting(context: EvalContext, supernet: SupernetFile) -> EvalContext:
    """``context`` searching the supernet's space, training replaced by inheriting its weights."""
    cfg = context.cfg
    bn_images = cfg.supernet.bn_images
    space = searched_space(cfg, context.splits)
    return dataclasses.replace(context, cfg=dataclasses.replace(cfg, space=space),
                               trainer=Inheritor(supernet.net, bn_images),
                               weights_from=f"{supernet.describe()}; BatchNorm re-estimated on {bn_images} "
                                            "training images")
