"""The block-kind table: every stage kind of the grammar, one :class:`BlockKind` entry each.

The parser, builder, sampler, pruner and supernet read this table; none of them names a kind.
Entries live in the modules of this package, each listing its kinds in ``KINDS``: a new kind is
a new entry in one of them (or a new module), found here without any other change.

>>> block_kind("ir").required
('r', 'k', 's', 'e', 'c')
>>> "skip" in block_types(), "skip" in stage_kinds()
(False, True)
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from nas.core.config import SpaceConfig
from nas.core.schema import check_choices
from nas.space.kinds.base import BlockKind, ChannelGroup, Chooser, Coupling, is_pointwise
from nas.space.errors import ArchError

__all__ = ["BlockKind", "ChannelGroup", "Chooser", "Coupling", "block_kind", "block_types", "check_space",
           "elastic_kinds", "is_pointwise", "stage_kinds", "table"]

_NOT_ENTRIES = {"base", "elastic"}  # modules of this package that hold no kinds


@cache
def table() -> dict[str, BlockKind]:
    """Every kind by name: modules by their ``POSITION`` then name, kinds in their module's order."""
    kinds: dict[str, BlockKind] = {}
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)
               if info.name not in _NOT_ENTRIES and not info.name.startswith("_")]
    # POSITION (default: after the others) keeps listings in a stable, reading order
    for module in sorted(modules, key=lambda m: (getattr(m, "POSITION", 100), m.__name__)):
        for entry in getattr(module, "KINDS"):
            assert isinstance(entry, BlockKind), f"{module.__name__}.KINDS holds {entry!r}, not a BlockKind"
            assert entry.name not in kinds, f"block kind {entry.name!r} defined twice"
            kinds[entry.name] = entry
    return kinds


def block_kind(name: str) -> BlockKind:
    """The entry of kind ``name``; an unknown name is an :class:`ArchError` listing the kinds."""
    try:
        return table()[name]
    except KeyError:
        raise ArchError(f"unknown block kind {name!r}; allowed: {', '.join(table())}") from None


def stage_kinds() -> tuple[str, ...]:
    """Every stage kind the grammar reads."""
    return tuple(table())


def block_types() -> tuple[str, ...]:
    """The kinds a search space can offer (``space.block_types``)."""
    return tuple(name for name, entry in table().items() if entry.searchable)


def elastic_kinds() -> tuple[str, ...]:
    """The kinds a supernet slices."""
    return tuple(name for name, entry in table().items() if not entry.elastic_why)


def check_space(cfg: SpaceConfig) -> None:
    """Refuse, in one line naming the YAML key, block types a space cannot offer and settings an
    offered kind cannot take."""
    offered: list[str] = []
    for stage in cfg.stages:
        check_choices(stage.block_types or (), "space.stages[].block_types", block_types())
        offered += stage.block_types or ()
    check_choices(cfg.block_types, "space.block_types", block_types())
    offered += cfg.block_types
    for name in dict.fromkeys(offered):
        table()[name].check_space(cfg)
