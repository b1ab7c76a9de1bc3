"""What a block kind is: one class per kind holds everything hwnas knows about it (grammar tokens,
validation, output size, builder, search-space settings, pruning coupling, elastic behaviour, or
why it has none of the last two). The parser, builder, sampler, pruner and supernet read these
entries and never branch on kind names.

A new kind is a subclass in a module of :mod:`nas.space.kinds`, listed in that module's
``KINDS``; the table (:func:`nas.space.kinds.table`) finds it there.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from nas.space.blocks import ConvBnAct
from nas.space.errors import ArchError

if TYPE_CHECKING:
    from nas.core.config import SpaceConfig
    from nas.space.kinds.elastic import ElasticConvBn
    from nas.space.spec import StageSpec

CHANNEL_DIVISOR = 8  # channel counts the search space gives are multiples of this


class Chooser(Protocol):
    """What the space asks of a trial: an Optuna trial, a FixedTrial, or a supernet's policy."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        ...


@dataclass
class ChannelGroup:
    """Channels that ``owner[producer]`` (a conv + BN block) produces and ``owner[consumer]``
    consumes: a conv + BN block inside a block (integer keys into its Sequential), or the
    classifier of the network (attribute keys into the network)."""

    name: str
    owner: nn.Module
    producer: int | str
    shuffle: int | None
    depthwise: int | None
    se: int | None
    consumer: int | str
    groups: int  # groups of the shuffle (1: none)

    def at(self, key: int | str) -> nn.Module:
        if isinstance(self.owner, nn.Sequential) and isinstance(key, int):
            return self.owner[key]
        module = getattr(self.owner, str(key))
        assert isinstance(module, nn.Module)
        return module

    def put(self, key: int | str, module: nn.Module) -> None:
        if isinstance(self.owner, nn.Sequential) and isinstance(key, int):
            self.owner[key] = module
        else:
            setattr(self.owner, str(key), module)

    def block(self, key: int | str) -> ConvBnAct:
        """The conv + BN (+ activation) block at ``key``."""
        block = self.at(key)
        assert isinstance(block, ConvBnAct)  # coupling rules only make groups of such blocks
        return block

    @property
    def source(self) -> ConvBnAct:
        """The producing conv + BN (+ activation) block."""
        return self.block(self.producer)

    @property
    def sources(self) -> list[ConvBnAct]:
        return [self.source]

    @property
    def channels(self) -> int:
        return self.source.conv.out_channels

    @property
    def unit(self) -> int:
        """Channels are kept in multiples of this (g*g with a shuffle, else 1)."""
        return self.groups * self.groups if self.groups > 1 else 1


Coupling = tuple[list[ChannelGroup], list[str]]  # prunable groups, and blocks left dense with why
ElasticLayers = Mapping[str, "ElasticConvBn"]


def is_pointwise(module: nn.Module) -> bool:
    """A dense (ungrouped) 1x1 conv + BN block."""
    return isinstance(module, ConvBnAct) and module.conv.kernel_size == (1, 1) and module.conv.groups == 1


class BlockKind:
    """One stage kind of the grammar. Subclasses set the class attributes and override what applies."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for help texts and docs
    example: ClassVar[str]  # a stage of this kind in canonical form (the contract tests build it)
    required: ClassVar[tuple[str, ...]]  # tokens in canonical order
    optional: ClassVar[dict[str, int]] = {}  # tokens written only when they differ from these defaults
    limits: ClassVar[dict[str, int]] = {}  # upper bounds of this kind's own tokens (the grammar's otherwise)
    flags: ClassVar[tuple[str, ...]] = ()  # this kind's own 0/1 tokens
    counts: ClassVar[tuple[str, ...]] = ()  # this kind's own numbers that may be 0 (0: absent)
    searchable: ClassVar[bool] = True  # a search space may offer it (space.block_types)
    stride_at_end: ClassVar[bool] = False  # the stage's stride follows its last block, not its first
    pruning_why: ClassVar[str] = ""  # why structured pruning has no rule for it ("" : coupling() is the rule)
    elastic_why: ClassVar[str] = ""  # why a supernet cannot slice it ("": the elastic_* methods do)

    # --- grammar and shapes -------------------------------------------------------------------
    def validate(self, stage: StageSpec, in_chs: int) -> None:
        """Raise :class:`ArchError` where ``stage`` reading ``in_chs`` channels cannot be built."""

    def halve(self, size: int) -> int:
        """Feature size after this kind's stride-2 step (padded: halves rounding up)."""
        return -(-size // 2)

    def build(self, stage: StageSpec, in_chs: int, *, index: int) -> nn.Module:
        """Block ``index`` of ``stage`` reading ``in_chs`` channels."""
        raise NotImplementedError(self.name)

    def block_stride(self, stage: StageSpec, index: int) -> int:
        return stage.stride if index == 0 else 1

    # --- search space -------------------------------------------------------------------------
    def sample(self, trial: Chooser, prefix: str, cfg: SpaceConfig, chs: float) -> dict[str, Any]:
        """StageSpec settings of this kind chosen through ``trial`` (names under ``prefix``);
        ``chs`` is the stage's width-scaled channel count (out_chs already holds it rounded)."""
        return {}

    def check_space(self, cfg: SpaceConfig) -> None:
        """Raise a one-line UserError when ``cfg`` offers this kind settings it cannot take."""

    # --- structured pruning -------------------------------------------------------------------
    def coupling(self, block: nn.Module, name: str) -> Coupling:
        """The prunable hidden-channel groups of one built block (named ``name``)."""
        if not self.pruning_why:
            raise AssertionError(f"block kind {self.name!r} gives neither a pruning rule nor why it has none")
        return [], [f"{name}: {self.pruning_why}"]

    def stream_output(self, block: nn.Module) -> ConvBnAct | None:
        """The conv whose output this block adds into a residual stream of coupled channels (None:
        the block does not join streams)."""
        return None

    def residual(self, block: nn.Module) -> bool:
        """Whether the block adds its input to its output (asked of blocks that join streams)."""
        return False

    def pointwise_input(self, block: nn.Module) -> ConvBnAct | None:
        """The dense 1x1 conv through which the block reads its input, if it reads it so."""
        return None

    # --- supernet -----------------------------------------------------------------------------
    def elastic_layers(self, max_in: int, max_out: int, *, max_k: int, max_e: int, stride: int,
                       hswish: bool) -> dict[str, ElasticConvBn]:
        """The layers of one elastic block at its largest setting, by attribute name."""
        raise ArchError(f"block kind {self.name!r} is not elastic: {self.elastic_why}")

    def elastic_forward(self, layers: ElasticLayers, x: torch.Tensor, out_chs: int, k: int, e: int,
                        stride: int) -> torch.Tensor:
        raise NotImplementedError(self.name)

    def elastic_export(self, layers: ElasticLayers, block: nn.Module, in_chs: int, out_chs: int, k: int,
                       e: int) -> None:
        """Copy a setting's slices into the ordinary block :meth:`build` made for it."""
        raise NotImplementedError(self.name)

    def elastic_hidden(self, layers: ElasticLayers, *,
                       expansion_one: bool) -> tuple[list[ElasticConvBn], ElasticConvBn] | None:
        """The layers writing the block's hidden channels and the one reading them (for channel
        reordering); None where the hidden channels are tied to the block's input. ``expansion_one``:
        the space offers e=1."""
        return None

    # --- latency tables -----------------------------------------------------------------------
    def hwnasbench_key(self, stage: StageSpec, where: str, stride: int) -> str | None:
        """HW-NAS-Bench's key of one block (``where``: its H, W, Cin, Cout part); None: not in its space."""
        return None

    @classmethod
    def in_hwnasbench(cls) -> bool:
        """Whether HW-NAS-Bench's tables name blocks of this kind (the kind gives their keys)."""
        return cls.hwnasbench_key is not BlockKind.hwnasbench_key
