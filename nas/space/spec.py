"""The typed stage of an architecture: plain data, written and read by the grammar
(:mod:`nas.space.arch`) and by every block kind (:mod:`nas.space.kinds`).

>>> StageSpec("ir", repeats=2, stride=2, out_chs=24, kernel=5, exp_ratio=6).values()["k"]
5
"""
from __future__ import annotations

from dataclasses import dataclass

from nas.space.errors import ArchError
from nas.space.kinds import block_kind

__all__ = ["ArchError", "StageSpec", "TOKEN_FIELDS", "format_tokens"]

# Grammar tokens stored as named StageSpec fields; any other token a kind declares is kept in
# ``StageSpec.extra`` under its own name.
TOKEN_FIELDS = {"r": "repeats", "k": "kernel", "s": "stride", "e": "exp_ratio", "g": "groups", "c": "out_chs",
                "se": "se", "hs": "hswish", "fg": "first_grouped", "m": "mid_chs", "ps": "proj_stride",
                "ns": "no_skip"}


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` blocks of one kind; only the first block is strided (a kind may say
    otherwise, :attr:`nas.space.kinds.BlockKind.stride_at_end`)."""

    kind: str
    repeats: int
    stride: int
    out_chs: int
    kernel: int = 3
    exp_ratio: int = 1
    groups: int = 1
    se: int = 0  # 0: none; 1: MobileNetV3's SE (expanded/4, hard-sigmoid); 2: MnasNet's (input/4, sigmoid)
    hswish: bool = False
    first_grouped: bool = True
    mid_chs: int = 0  # ir/fir: expanded channels when not in_chs * exp_ratio (0: in_chs * exp_ratio)
    proj_stride: bool = False  # fir: the 1x1 projection carries the stride, not the kxk conv
    no_skip: bool = False  # fir: no residual add even where the shape allows one
    extra: tuple[tuple[str, int], ...] = ()  # tokens of a kind that have no field above, in canonical order

    def values(self) -> dict[str, int]:
        """Every token's value by its grammar key."""
        out = {token: int(getattr(self, name)) for token, name in TOKEN_FIELDS.items()}
        out.update(self.extra)
        return out

    def get(self, key: str) -> int:
        """The value of a kind's own token (one kept in ``extra``)."""
        return dict(self.extra)[key]

    def expanded(self, in_chs: int) -> int:
        """Expanded channels of an ir/fir block reading ``in_chs``."""
        return self.mid_chs or in_chs * self.exp_ratio

    def format(self) -> str:
        entry = block_kind(self.kind)
        return format_tokens(self.kind, entry.required, entry.optional, self.values())

    @classmethod
    def from_values(cls, kind: str, v: dict[str, int]) -> StageSpec:
        """The stage of ``kind`` with these token values (tokens without a field go to ``extra``)."""
        return cls(kind, repeats=v.get("r", 1), stride=v["s"], out_chs=v["c"], kernel=v.get("k", 3),
                   exp_ratio=v.get("e", 1), groups=v.get("g", 1), se=v.get("se", 0), hswish=bool(v.get("hs", 0)),
                   first_grouped=bool(v.get("fg", 1)), mid_chs=v.get("m", 0), proj_stride=bool(v.get("ps", 0)),
                   no_skip=bool(v.get("ns", 0)), extra=_extra(kind, v))


def _extra(kind: str, values: dict[str, int]) -> tuple[tuple[str, int], ...]:
    """The kind's own tokens (those without a field) in its canonical order, whatever order given."""
    entry = block_kind(kind)
    order = [*entry.required, *entry.optional]
    own = [k for k in values if k not in TOKEN_FIELDS]
    return tuple((k, values[k]) for k in sorted(own, key=lambda k: order.index(k) if k in order else len(order)))


def format_tokens(kind: str, required: tuple[str, ...], optional: dict[str, int], values: dict[str, int]) -> str:
    """``kind`` and its tokens in canonical order: required ones, then optional ones that differ
    from their defaults."""
    tokens = [f"{k}{values[k]}" for k in required]
    tokens += [f"{k}{values[k]}" for k, default in optional.items() if values[k] != default]
    return "_".join([kind, *tokens])
